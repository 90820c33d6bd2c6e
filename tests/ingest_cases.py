"""Bad and good input lines of the paper's CSV, and running the Beam ingest graph on small
inputs, shared by the ingest, command-line and remote-storage suites."""
import json
import os

import apache_beam as beam

from components.ingest.executor import build_ingest
from models import data
from models.config import DataConfig

HEADER = b"user_id,seq_d1,seq_d2,domain_id\n"
GOOD_TRAIN = [b'1,"[1, 2, 3]","[10, 11]",0\n', b'2,"[2, 3]","[11, 12, 13]",1\n', b'3,"[1, 4]",[],0\n',
              b'4,[],"[12, 10]",1\n', b'5,"[3, 1, 2]","[13, 12]",1\n']
GOOD_TEST = [b'6,"[1, 2]","[10]",0\n', b'7,[],"[11, 12]",1\n']

# (name, bad train line, field or phrase the error must name, reason code)
PAPER_CASES = [
    ("bad_json", b'8,"[1, 2",[10],0\n', "field 'seq_d1' is not a JSON list", "bad_json"),
    ("non_integer_id", b'8,"[1, ""a""]",[10],0\n', "field 'seq_d1' holds 'a'", "bad_id"),
    ("negative_id", b'8,"[1, -4]",[10],0\n', "field 'seq_d1' holds -4", "bad_id"),
    ("empty_user_id", b',"[1, 2]",[10],0\n', "field 'user_id' is empty", "bad_id"),
    ("missing_column", b'8,"[1, 2]",0\n', "expected 4 columns", "columns"),
    ("extra_column", b'8,"[1, 2]",[10],0,extra\n', "expected 4 columns", "columns"),
    ("unknown_domain", b'8,"[1, 2]",[10],2\n', "field 'domain_id' must be 0 or 1", "domain"),
    ("no_target", b'8,[],[10],0\n', "field 'seq_d1' is empty", "no_target"),
    ("too_long", b'8,"[' + b", ".join(b"1" for _ in range(9)) + b']",[10],0\n', "more than data.max_history_length=8",
     "too_long"),
    ("latin1_bytes", b'8,"[1, 2]","[10]",0 \xe9t\xe9\n', "byte 0xe9 at column", "encoding"),
    ("duplicate", b'2,"[2, 3]","[11, 12, 13]",1\n', "duplicate row: user_id '2' with domain_id 1", "duplicate"),
]


def run_ingest(data_path, out_dir, data_format="auto", cfg=DataConfig()):
    with beam.Pipeline() as p:
        build_ingest(p, data_path, data_format, cfg, out_dir)
    with open(os.path.join(out_dir, "ingest_report.json")) as f:
        return json.load(f)


def split_rows(out_dir, split):
    return data.read_split(out_dir, split)


def write_paper_pair(src, train_users: int):
    """A paper-format folder: `train_users` patterned train rows and two test rows (users 900, 901)."""
    src.mkdir()
    train = ["user_id,seq_d1,seq_d2,domain_id"]
    for u in range(train_users):
        train.append(f'{u},"[{u % 7 + 1}, {u % 5 + 20}]","[{u % 3 + 100}, {u % 4 + 110}]",{u % 2}')
    (src / "train.csv").write_text("\n".join(train) + "\n")
    (src / "test.csv").write_text('user_id,seq_d1,seq_d2,domain_id\n900,"[1]","[100, 101]",0\n901,"[2, 3]","[111, 112]",1\n')
    return src
