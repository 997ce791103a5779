"""ViPER-GT XML ground truth: the real NIST F4DE files in ../shared and small broken ones.

Hand counts from the files (data/annotations/viper/):

- test1-gtf.xml, video `file:20050519-1503-Excerpt.mpg`, NUMFRAMES 5121. Objects: ObjectPut
  938:1493, ObjectGet 1493:3327, CellToEar 3503:3738, 3503:3739, 3503:3739. 1-based inclusive,
  so ObjectPut ∪ ObjectGet = frames 938..3327 = 2390 frames, CellToEar = 3503..3739 = 237
  frames; all objects: 2627 anomalous frames, 0-based half-open [937, 3327) and [3502, 3739).
  ObjectPut has 8 one-frame BoundingBox values (1116:1116 ... 1123:1123), ObjectGet one
  (3327:3327): 9 boxes; the first is x=105 y=168 width=131 height=101 on frame 1116 (0-based 1115).
- test6-Xtra-gtf.xml, the same video: CellToEar 203:3538, 2503:3939, 3503:3755, ObjectPut
  1:1100, ObjectGet 1111:3333: the union is frames 1..3939 (the gap 1101..1110 lies inside
  CellToEar 203:3538), 3939 frames; ObjectPut alone is 1100 frames starting at frame 1.
- test7-empty_gtf.xml: the same video, no objects: 5121 normal frames.
- test_file3.clear.xml, `test_file3.mov`, NUMFRAMES 12125: PERSON 11 over 7497:11372 with
  OCCLUSION true on 7497:7612, 7742:7757, 7782:7812, 7837:7917, 7947:11372 (116 + 16 + 31 + 81
  + 3426 = 3670 frames) and one LOCATION box x=661 y=91 width=17 height=72 over 7497:11372.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from vadkit.cli import app
from vadkit.errors import VadkitError
from vadkit.io.annotations import DEFAULT_CONVENTIONS, detect_format, read_annotations
from vadkit.io.scores import ScoreMeta, write_scores
from vadkit.io.viper import merge, parse_framespan
from vadkit.metrics import evaluate

runner = CliRunner()
VID = "20050519-1503-Excerpt"


@pytest.fixture(scope="module")
def viper(shared_dir):
    return shared_dir / "data" / "annotations" / "viper"


def test_trecvid_frame_count_spans_and_classes(viper):
    a = read_annotations(viper / "test1-gtf.xml")
    assert a.format == "viper" and a.videos == [VID]  # `file:` prefix and .mpg dropped
    assert a.frame_count(VID) == 5121
    assert a.intervals(VID) == [(937, 3327), (3502, 3739)]
    labels = a.labels(VID)
    assert labels.shape == (5121,) and int(labels.sum()) == 2627
    assert labels[936] == 0 and labels[937] == 1 and labels[3326] == 1 and labels[3327] == 0
    assert a.video_classes(VID) == ("CellToEar", "ObjectGet", "ObjectPut")
    assert DEFAULT_CONVENTIONS["viper"] == (True, True)
    # the convention options still apply: read as 0-based, '938:1493' starts at frame 938
    z = read_annotations(viper / "test1-gtf.xml", one_based=False)
    assert z.intervals(VID) == [(938, 3328), (3503, 3740)]
    x = read_annotations(viper / "test1-gtf.xml", end_inclusive=False)
    assert x.intervals(VID) == [(937, 3326), (3502, 3738)]


def test_object_selection_and_boxes(viper):
    a = read_annotations(viper / "test1-gtf.xml", viper_objects=["celltoear"])
    assert a.intervals(VID) == [(3502, 3739)] and int(a.labels(VID).sum()) == 237
    assert a.boxes(VID) == []  # CellToEar instances carry no box
    b = read_annotations(viper / "test1-gtf.xml", viper_objects=["ObjectPut,ObjectGet"])
    assert int(b.labels(VID).sum()) == 2390
    boxes = b.boxes(VID)
    assert len(boxes) == 9
    first = b.boxes(VID, 1115)
    assert [(x.x, x.y, x.width, x.height, x.object) for x in first] == [
        (105, 168, 131, 101, "ObjectPut")
    ]
    assert b.boxes(VID, 1114) == []
    with pytest.raises(VadkitError, match=r"Fighting: no such OBJECT descriptor.*CellToEar"):
        read_annotations(viper / "test1-gtf.xml", viper_objects=["Fighting"])


def test_union_with_gap_covered_and_empty_file(viper):
    a = read_annotations(viper / "test6-Xtra-gtf.xml")
    assert a.intervals(VID) == [(0, 3939)] and int(a.labels(VID).sum()) == 3939
    put = read_annotations(viper / "test6-Xtra-gtf.xml", viper_objects=["ObjectPut"])
    assert put.intervals(VID) == [(0, 1100)]  # '1:1100' starts at the first frame
    e = read_annotations(viper / "test7-empty_gtf.xml")
    assert not e.is_anomalous(VID) and e.labels(VID).shape == (5121,)
    assert e.video_class(VID) == "Normal"


def test_attribute_filter_on_dynamic_values(viper):
    path = viper / "test_file3.clear.xml"
    a = read_annotations(path, viper_objects=["PERSON"], viper_where=["OCCLUSION=true"])
    assert a.frame_count("test_file3") == 12125
    assert a.intervals("test_file3")[0] == (7496, 7612)
    assert int(a.labels("test_file3").sum()) == 3670
    box = a.boxes("test_file3", 7496)
    assert [(b.x, b.y, b.width, b.height, b.attribute) for b in box] == [
        (661, 91, 17, 72, "LOCATION")
    ]
    # a value no frame has marks nothing; an attribute the object lacks drops it
    assert not read_annotations(path, viper_where=["OCCLUSION=maybe"]).is_anomalous("test_file3")
    assert not read_annotations(path, viper_where=["Action=Fighting"]).is_anomalous("test_file3")
    with pytest.raises(VadkitError, match="expected ATTRIBUTE=VALUE"):
        read_annotations(path, viper_where=["OCCLUSION"])


def test_perfect_scores_from_the_trecvid_file_give_auc_one(viper, tmp_path):
    a = read_annotations(viper / "test1-gtf.xml")
    scores = {VID: a.labels(VID).astype(np.float32)}
    r = evaluate(scores, a)
    assert r["roc_auc"] == 1.0 and r["average_precision"] == 1.0 and r["frames"] == 5121
    d = tmp_path / "scores"
    write_scores(d, ScoreMeta(VID, 5121, 16, 321), scores[VID])
    out = runner.invoke(app, ["eval", str(d), "-a", str(viper / "test1-gtf.xml"), "--json"])
    assert out.exit_code == 0, out.output
    assert '"roc_auc": 1.0' in out.stdout and '"format": "viper"' in out.stdout
    sel = ["-f", "viper", "--viper-objects", "CellToEar"]
    out = runner.invoke(app, ["eval", str(d), "-a", str(viper / "test1-gtf.xml"), *sel, "--json"])
    assert out.exit_code == 0 and '"anomalous_frames": 237' in out.stdout


def test_directory_reads_as_one_annotation(viper, tmp_path):
    d = tmp_path / "gt"
    d.mkdir()
    shutil.copy(viper / "test1-gtf.xml", d)
    shutil.copy(viper / "test_file3.clear.xml", d)
    assert detect_format(d) == "viper"
    a = read_annotations(d)
    assert sorted(a.videos) == [VID, "test_file3"]
    shutil.copy(viper / "test7-empty_gtf.xml", d)  # describes the same video again
    with pytest.raises(
        VadkitError, match=r"test7-empty_gtf.xml:\d+: video 2005.*already described"
    ):
        read_annotations(d)


def test_framespan_parsing():
    assert parse_framespan("1:5 8:12", "x") == [(0, 5), (7, 12)]
    assert parse_framespan("3:3", "x") == [(2, 3)]
    assert merge([(7, 12), (0, 5), (5, 6)]) == [(0, 6), (7, 12)]
    for bad in ("1-5", "5:2", "a:b", "0:4"):
        with pytest.raises(VadkitError, match="framespan"):
            parse_framespan(bad, "f.xml:3: <object>")


HEAD = '<?xml version="1.0"?>\n<viper xmlns="http://lamp.cfar.umd.edu/viper#">\n'


def _write(tmp_path, body: str):
    p = tmp_path / "bad.xml"
    p.write_text(HEAD + body)
    return p


def test_malformed_xml_is_one_error_line_naming_line_and_element(tmp_path):
    p = _write(tmp_path, '<data><sourcefile filename="a.mp4">\n<object name="X">\n</data></viper>')
    write_scores(tmp_path / "s", ScoreMeta("a", 32, 16, 2), np.zeros(32))
    r = runner.invoke(app, ["eval", str(tmp_path / "s"), "-a", str(p)])
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.output
    assert lines[0].startswith(f"Error: {p}:5: malformed XML: mismatched tag")
    assert "inside <object name='X'> opened on line 4" in lines[0]
    p = _write(tmp_path, '<data><sourcefile filename="a.mp4">\n<object name="X" framespan="9-3"/>')
    p.write_text(p.read_text() + "</sourcefile></data></viper>")
    with pytest.raises(VadkitError, match=r"bad.xml:4: <object name='X'>: bad framespan '9-3'"):
        read_annotations(p)


def test_entities_are_refused_before_parsing(tmp_path):
    p = tmp_path / "lol.xml"
    p.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE viper [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>\n<viper>&b;</viper>'
    )
    with pytest.raises(VadkitError, match="declares entities"):
        read_annotations(p)
    q = tmp_path / "other.xml"
    q.write_text("<?xml version='1.0'?><annotation/>")
    with pytest.raises(VadkitError, match="not a ViPER-GT file"):
        read_annotations(q)
    with pytest.raises(VadkitError, match="viper-objects/--viper-where are for ViPER"):
        txt = tmp_path / "gt.txt"
        txt.write_text("v 1 2\n")
        read_annotations(txt, viper_objects=["X"])
