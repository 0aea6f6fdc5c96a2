"""launch.py with a fault injected: `python tests/fault_run.py SIGNAL STEP [launch.py arguments]` sends SIGNAL
(KILL, INT, TERM) to its own process right after training step STEP, before that step's checkpoint, as a user's
`kill -9`, Ctrl-C or a scheduler's SIGTERM would. Used by the fault tests as a subprocess."""
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import launch  # noqa: E402
from lightning.pytorch.callbacks import Callback  # noqa: E402

from ui3d.systems import runner  # noqa: E402


class SendSignal(Callback):
    def __init__(self, signum: int, step: int):
        self.signum, self.step = signum, step

    def on_train_batch_end(self, trainer, *args) -> None:  # runs before ModelCheckpoint's (Lightning orders it last)
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


if __name__ == "__main__":
    signum, step = getattr(signal, f"SIG{sys.argv[1]}"), int(sys.argv[2])
    make_trainer = runner.make_trainer
    runner.make_trainer = lambda cfg, stage_dir, extra=(): make_trainer(cfg, stage_dir, (*extra, SendSignal(signum, step)))
    sys.exit(launch.main(sys.argv[3:]))
