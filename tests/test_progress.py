"""Progress on stderr: a bar in a terminal; in a log, a line every few seconds, not every update."""

import io
import subprocess
import sys

from gankit.training.progress import ProgressLines, progress_display


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_lines_come_at_the_interval_and_at_the_end():
    clock, out = Clock(), io.StringIO()
    lines = ProgressLines(100, interval=10.0, stream=out, clock=clock)
    for _ in range(100):
        clock.now += 0.5  # 2 steps a second: 50 s in all
        lines.update(1)
        lines.set_postfix(d="0.693", g="0.701")
    lines.close()
    written = out.getvalue().splitlines()
    assert len(written) == 6  # at 10, 20, 30, 40 and 50 s, and the closing line
    assert written[0] == "step 20/100 (20%) 2.0 step/s, 40 s left, d=0.693 g=0.701"
    assert written[-1].startswith("step 100/100 (100%) 2.0 step/s, d=")


def test_a_terminal_gets_the_bar_and_a_file_the_lines():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    bar = progress_display(10, 0, stream=Terminal())
    assert type(bar).__name__ == "tqdm"
    bar.close()
    assert isinstance(progress_display(10, 0, stream=io.StringIO()), ProgressLines)


def test_a_300_step_run_logged_to_a_file_writes_little_progress(tmp_path):
    log = tmp_path / "stderr.txt"
    with open(log, "wb") as err:
        subprocess.run([sys.executable, "-m", "gankit", "train", "--out", str(tmp_path / "run"), "--steps", "300",
                        "--width", "4", "--batch-size", "8", "--report", "false", "--tensorboard", "off",
                        "--checkpoint-every", "300", "--sample-every", "300", "--sample-every-early", "300"],
                       stdout=subprocess.DEVNULL, stderr=err, check=True, timeout=300)
    text = log.read_text()
    progress = [line for line in text.splitlines() if line.startswith("step ")]
    assert progress and progress[-1].startswith("step 300/300 (100%)")
    assert len(text.encode()) < 5_000, text[:2000]
