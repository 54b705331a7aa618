"""The data-set doctor: what is wrong with a user's images and masks before training, the conversion of the
common mask encodings to class ids, and a config that trains on the result.

    pairing.py        images and masks of two folders paired by name
    encodings.py      what a label file stores (ids, 0/255, colours, a palette PNG) and training's quick look
    palettes.py       Cityscapes, Pascal VOC and user palettes: colours to class ids
    scan.py           every pair read once, in worker processes, into summaries
    diagnosis.py      the set's encoding, classes, pixels, class weights and findings
    label_maps.py     stored values to class ids, per file
    convert.py        the converted set (id PNGs, images, lists, class names), written atomically
    config_writer.py  a training config for the converted set
    report.py         the self-contained HTML report
    labelme.py, voc.py  the annotation tools' layouts, converted to the same id PNGs and lists
    checkup.py        the procedures behind tools/check_dataset.py and tools/convert_labelme.py

Nothing is imported here: :mod:`paddleseg.datasets.checks` imports :mod:`.encodings` at every training start.
"""
