"""connected_unets.doc_blocks: a script's table goes between its markers, the prose around it stays."""

import pytest

from connected_unets.doc_blocks import block_markers, marked_block, write_marked_block

DOCUMENT = "# Results\n\nWritten by people.\n\n<!-- table:begin -->\n| old |\n<!-- table:end -->\n\nMore prose.\n"


def test_the_text_between_the_markers_is_replaced_and_the_prose_kept(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text(DOCUMENT)
    write_marked_block(path, "table", "| new |")
    assert path.read_text() == DOCUMENT.replace("| old |", "| new |")


def test_the_block_is_read_back_between_its_own_markers_only():
    assert marked_block(DOCUMENT, "table").strip() == "| old |"
    assert marked_block(DOCUMENT, "ledger") is None
    assert block_markers("ledger") == ("<!-- ledger:begin -->", "<!-- ledger:end -->")


def test_a_document_without_the_markers_is_refused_in_one_line_and_left_alone(tmp_path):
    path = tmp_path / "doc.md"
    path.write_text("# no markers\n")
    with pytest.raises(SystemExit, match=r"doc\.md: no <!-- table:begin --> \.\.\. <!-- table:end --> markers"):
        write_marked_block(path, "table", "| new |")
    assert path.read_text() == "# no markers\n"


def test_a_missing_document_is_named(tmp_path):
    with pytest.raises(SystemExit, match=r"absent\.md: no such file"):
        write_marked_block(tmp_path / "absent.md", "table", "| new |")


def test_table_cells_write_intervals_the_same_way_in_every_document():
    from connected_unets.doc_blocks import ci_cell, points_range

    assert ci_cell({"ci": [0.8251, 0.8579]}) == "0.825–0.858"
    assert ci_cell({"ci": [None, None]}) == "–"
    assert points_range((-0.0091, 0.0064)) == "-0.9 to +0.6"
