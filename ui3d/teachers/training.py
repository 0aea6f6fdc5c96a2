"""The training loop the project's teacher scripts share (embedded text-to-image, MNIST digits): resume from
`<work_dir>/last.ckpt`, log the running loss with ETA, checkpoint atomically, export the EMA weights at the end.

A trainer provides `step`, `elapsed`, `history`, `train_step() -> loss`, `lr_at(step)`, `state()`, `load(state)`
and `export(out)`; `args` carries `steps`, `log_every`, `checkpoint_every`, `work_dir` and `out`.
"""
from __future__ import annotations

import time

from ui3d import files


def run(trainer, args) -> None:
    ckpt = args.work_dir / "last.ckpt"
    if ckpt.is_file():
        trainer.load(files.torch_load(ckpt, "teacher training checkpoint"))
        print(f"resumed from {ckpt} at step {trainer.step}")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    running, start = [], time.time() - trainer.elapsed
    while trainer.step < args.steps:
        running.append(trainer.train_step())
        trainer.elapsed = time.time() - start
        if trainer.step % args.log_every == 0 or trainer.step == args.steps:
            mean = sum(running) / len(running)
            trainer.history.append([trainer.step, round(mean, 5), round(trainer.elapsed, 1)])
            eta = trainer.elapsed / trainer.step * (args.steps - trainer.step) if trainer.step else 0
            print(f"step {trainer.step}/{args.steps} loss {mean:.4f} lr {trainer.lr_at(trainer.step):.2e} "
                  f"{trainer.elapsed:.0f}s eta {eta:.0f}s", flush=True)
            running = []
        if trainer.step % args.checkpoint_every == 0 or trainer.step == args.steps:
            files.torch_save(trainer.state(), ckpt)
    trainer.export(args.out)
    print(f"wrote {args.out} ({trainer.elapsed:.0f} s of training)")
