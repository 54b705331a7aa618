"""The data-set report (paddleseg/datasets/doctor/report.py): one self-contained page, every file name
escaped, the class histogram, the findings, and a gallery of a sample and of every flagged pair."""
import base64
import html
import io
import re

import cv2
import numpy as np
import pytest

from paddleseg.datasets.doctor.checkup import CheckupRequest, run_checkup
from paddleseg.errors import DatasetError, UserError

from doctor_sets import write_set

HOSTILE = "x<script>alert(1)<b>&\"'"


def report_of(root, folder, **options):
    request = CheckupRequest(images=str(root / "images"), labels=str(root / "masks"), report=str(folder), workers=1,
                             progress=False, **options)
    try:
        return run_checkup(request, out=io.StringIO())
    except DatasetError:
        return 2


def test_the_page_is_self_contained_and_escapes_every_file_name(tmp_path):
    write_set(tmp_path / "in", "ids", count=12)
    for sub in ("images", "masks"):
        ext = ".jpg" if sub == "images" else ".png"
        (tmp_path / "in" / sub / f"s03{ext}").rename(tmp_path / "in" / sub / f"{HOSTILE}{ext}")
    (tmp_path / "in" / "masks" / "s05.png").write_bytes(b"broken")  # a flagged pair
    assert report_of(tmp_path / "in", tmp_path / "report") == 2
    page = (tmp_path / "report" / "index.html").read_text()
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [".paddleseg-output", "index.html"]
    assert "<script" not in page and html.escape(HOSTILE) in page
    assert not re.search(r"(src|href)=\"(?!data:)", page) and "http://" not in page and "https://" not in page
    sources = re.findall(r'<img src="data:image/(png|jpeg);base64,([^"]+)"', page)
    assert sources[0][0] == "png"  # the histogram
    for _, data in sources:
        picture = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None and picture.shape[1] > 100
    flagged = page.split('<div id="flagged">')[1].split("</div>")[0]
    assert flagged.count("<figure>") == 1 and "unreadable" in flagged and "s05.png" in flagged
    sample = page.split('<div id="sample">')[1].split("</div>")[0]
    assert sample.count("<figure>") == 8 and "s05.png" not in sample
    assert '<td class="error">error</td>' in page and "Pixels per class" not in page.split("<h2>Classes")[0]


def test_the_gallery_shows_every_flagged_pair_and_the_stored_mask(tmp_path):
    write_set(tmp_path / "in", "binary", count=3)
    assert report_of(tmp_path / "in", tmp_path / "report") == 2
    page = (tmp_path / "report" / "index.html").read_text()
    flagged = page.split('<div id="flagged">')[1].split("</div>")[0]
    assert flagged.count("<figure>") == 3 and flagged.count("<figcaption>binary_0_255:") == 3
    assert '<div id="sample">' not in page  # every pair is flagged: nothing left to sample
    first = re.search(r'<img src="data:image/jpeg;base64,([^"]+)"', flagged).group(1)
    picture = cv2.imdecode(np.frombuffer(base64.b64decode(first), np.uint8), cv2.IMREAD_GRAYSCALE)
    mask_panel = picture[22:, 324:644]  # the middle panel: the 0/255 mask as stored, grey
    assert mask_panel.min() < 30 and mask_panel.max() > 220


def test_a_report_folder_holding_other_files_is_refused_before_anything(tmp_path):
    write_set(tmp_path / "in", "ids", count=2)
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds notes.txt but is not an earlier data report"):
        report_of(tmp_path / "in", tmp_path / "report")
    assert [p.name for p in (tmp_path / "report").iterdir()] == ["notes.txt"]
    assert report_of(tmp_path / "in", tmp_path / "again") == 0
    assert report_of(tmp_path / "in", tmp_path / "again") == 0  # an earlier report is replaced
