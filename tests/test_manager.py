import pytest

from paddleseg.cvlibs import manager
from paddleseg.cvlibs.manager import Registry


def test_register_and_lookup_by_name_and_alias():
    reg = Registry("thing")

    @reg.add_component
    class Foo:
        pass

    reg.add_component(Foo, name="foo")
    assert reg["Foo"] is Foo and reg["foo"] is Foo
    assert "Foo" in reg and "Bar" not in reg
    assert reg.names == ["Foo", "foo"]


def test_registering_a_name_twice_is_an_error():
    reg = Registry("thing")
    reg.add_component(dict, name="x")
    with pytest.raises(KeyError, match="'x' is registered already"):
        reg.add_component(list, name="x")


def test_unknown_name_lists_registered_names_and_the_closest():
    reg = Registry("model")
    for name in ("ESPNetV2", "EESPNetHead"):
        reg.add_component(dict, name=name)
    with pytest.raises(KeyError) as err:
        reg["ESPNetv2"]
    message = str(err.value)
    assert "Did you mean: ESPNetV2" in message
    assert "Registered: EESPNetHead, ESPNetV2" in message


def test_non_callables_are_refused():
    with pytest.raises(TypeError):
        Registry("thing").add_component(3, name="three")


def test_the_model_registries_hold_both_released_forms():
    import paddleseg  # noqa: F401  (registers)

    assert {"ESPNetV2", "EESPNetHead"} <= set(manager.MODELS.names)
    assert "EESPNet" in manager.BACKBONES
