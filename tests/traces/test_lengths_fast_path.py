"""``load_pairs``' bulk path for plain length CSVs gives exactly the general reader's pairs, and
leaves every other file (signs, decimals, blanks, short rows, quotes...) to the general reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from traces.formats import read_rows
from traces.lengths_file import _plain_pairs, load_pairs
from traces.rows import ReadContext

DATA = Path(__file__).resolve().parents[2] / "traces" / "data"
BUNDLED = [DATA / "sharegpt_8k_lengths_llama2_tokenizer.csv", DATA / "sharegpt_v3_fit_vllm_paper_stats.csv"]


def general(path: str) -> np.ndarray:
    rows = read_rows(ReadContext(str(path), on_error="skip"), "auto")
    return np.array([(r.input_tokens, r.output_tokens) for r in rows], dtype=np.int64).reshape(-1, 2)


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
def test_bundled_tables_take_the_bulk_path_with_the_same_pairs(path):
    fast = _plain_pairs(path)
    assert fast is not None and fast.dtype == np.int64 and fast.flags["C_CONTIGUOUS"]
    assert np.array_equal(fast, general(path))


PLAIN = {
    "no_final_newline": "input_tokens,output_tokens\n1,2\n3,4",
    "other_columns": "x,output_len,prompt_len\na,2,1\nb,4,3\n",
    "leading_zeros_and_12_digits": "input_tokens,output_tokens\n007,999999999999\n3,4\n",
    "bom": "\ufeffinput_tokens,output_tokens\n1,2\n",
}
OTHER = {
    "decimal": "input_tokens,output_tokens\n1.0,2\n3,4\n",
    "fraction": "input_tokens,output_tokens\n1.5,2\n3,4\n",
    "negative": "input_tokens,output_tokens\n-1,2\n3,4\n",
    "plus": "input_tokens,output_tokens\n+1,2\n3,4\n",
    "space": "input_tokens,output_tokens\n 1,2\n3,4\n",
    "underscore": "input_tokens,output_tokens\n1_0,2\n3,4\n",
    "blank_line": "input_tokens,output_tokens\n1,2\n\n3,4\n",
    "short_row": "input_tokens,output_tokens,x\n1,2\n3,4,5\n",
    "empty_cell": "input_tokens,output_tokens\n,5\n3,4\n",
    "too_big": "input_tokens,output_tokens\n1000000000001,2\n3,4\n",
    "crlf": "input_tokens,output_tokens\r\n1,2\r\n3,4\r\n",
    "quoted": 'input_tokens,output_tokens\n"1",2\n3,4\n',
    "superscript_digit": "input_tokens,output_tokens\n\u00b2,2\n3,4\n",
}


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_plain_files_match_the_general_reader(tmp_path, name):
    path = tmp_path / f"{name}.csv"
    path.write_text(PLAIN[name], encoding="utf-8")
    fast = _plain_pairs(path)
    assert fast is not None and np.array_equal(fast, general(path))


@pytest.mark.parametrize("name", sorted(OTHER))
def test_other_files_go_to_the_general_reader(tmp_path, name):
    path = tmp_path / f"{name}.csv"
    path.write_text(OTHER[name], encoding="utf-8")
    assert _plain_pairs(path) is None
    assert np.array_equal(load_pairs(path), general(path))


def test_a_header_alone_is_still_an_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("input_tokens,output_tokens\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no usable rows"):
        load_pairs(path)
