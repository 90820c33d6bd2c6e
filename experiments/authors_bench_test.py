"""The authors'-code bench: inputs, the patch, timing lines and failures, with a stand-in for
their repository (a script shaped like theirs and a fake `torch`), so PyTorch is not needed."""
import csv
import json
import os
import sys

import pytest

from experiments import authors_bench

# the shape of their train_our.py: an epoch loop whose evaluation is `... = test(model,args_config,valLoader)`;
# it also samples from a set, which Python 3.11 refuses without the bench's prelude
FAKE_ENTRY = '''import argparse, random, time, torch
parser = argparse.ArgumentParser()
parser.add_argument("--epoch", type=int)
parser.add_argument("-dm")
args_config, _ = parser.parse_known_args()
def test(model, args_config, valLoader):
    return 0.5
model, valLoader = None, None
rows = open("dataset/%s_train_updated.csv" % args_config.dm).read().splitlines()
random.sample({1, 2, 3}, 2)
torch.Tensor().cuda()
def train():
    for epoch in range(args_config.epoch):
        time.sleep(0.01)
        hit = test(model,args_config,valLoader)
if __name__ == "__main__":
    for i in range(5):
        train()
'''
FAKE_TORCH = '''class Tensor:
    def cuda(self):
        raise RuntimeError("no GPU")
class nn:
    class Module:
        pass
'''


def _pair(folder):
    os.makedirs(folder)
    for split, n in (("train", 5), ("test", 3)):
        with open(os.path.join(folder, f"{split}.csv"), "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["user_id", "seq_d1", "seq_d2", "domain_id"])
            for u in range(n):
                writer.writerow([u, json.dumps(list(range(1, 30))), json.dumps(list(range(40, 70))), u % 2])
    return folder


def _their_repo(folder, entry=FAKE_ENTRY):
    os.makedirs(folder)
    with open(os.path.join(folder, "train_our.py"), "w") as f:
        f.write(entry)
    with open(os.path.join(folder, "torch.py"), "w") as f:
        f.write(FAKE_TORCH)
    return folder


def test_runs_their_script_on_our_inputs_and_reads_its_timings(tmp_path):
    data = _pair(str(tmp_path / "cloth_sport"))
    repo = _their_repo(str(tmp_path / "IM-VAE"))
    result = authors_bench.run(repo, data, "cloth_sport", str(tmp_path / "work"), epochs=3, python=sys.executable)
    assert len(result["epoch_s"]) == 3 and len(result["eval_s"]) == 3  # one run of their five
    assert all(s >= 0.01 for s in result["epoch_s"])
    assert (result["train_rows"], result["test_rows"]) == (5, 3)
    assert result["peak_rss_mb"] > 0
    with open(os.path.join(str(tmp_path / "work"), "dataset", "cloth_sport_train_updated.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and all(len(json.loads(r["corr_d1"])) == 20 for r in rows)
    assert sorted(os.listdir(repo)) == ["torch.py", "train_our.py"]  # their folder is left as it was


def test_a_failing_run_names_its_log(tmp_path):
    data = _pair(str(tmp_path / "cloth_sport"))
    repo = _their_repo(str(tmp_path / "IM-VAE"), FAKE_ENTRY.replace("time.sleep(0.01)", "raise SystemExit(3)"))
    with pytest.raises(authors_bench.AuthorsBenchError, match=r"bench_output\.log: the authors' code failed \(exit 3\)"):
        authors_bench.run(repo, data, "cloth_sport", str(tmp_path / "work"), epochs=1, python=sys.executable)


def test_an_unknown_script_or_missing_python_is_a_clear_error(tmp_path):
    repo = _their_repo(str(tmp_path / "IM-VAE"), "print('hello')\n")
    with pytest.raises(authors_bench.AuthorsBenchError, match="epoch loop"):
        authors_bench.prepare(repo, _pair(str(tmp_path / "cloth_sport")), "cloth_sport", str(tmp_path / "work"))
    with pytest.raises(authors_bench.AuthorsBenchError, match="--authors-python"):
        authors_bench.authors_python(repo, None)
