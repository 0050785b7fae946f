"""Resumable training runs (GNU Radio-free; torch, safetensors and JSON only, no pickle).

One pair of files per unfinished run of an app that writes OUT.safetensors + OUT.json
(apps/train_jscc.py, apps/train_prior.py):

    OUT.resume.safetensors   the model's and the optimizer's tensors (model.*, opt.<i>.<name>)
    OUT.resume.json          the app's state after the last finished epoch (epoch, step,
                             history, arguments, ...), the optimizer's param groups, the
                             scheduler's state, the RNG states, and the SHA-256 of the tensors

Both are written atomically after each finished epoch, the JSON last (it is the commit mark: a
pair whose tensors' SHA-256 is not the one the JSON names was interrupted and is refused).
The app deletes them when it saves its model.

    resume_paths(out)                                   the pair's paths
    check_resume(out, run_args, resume)                 refuse to start over an unfinished run
                                                        or to resume one of other arguments
    save_resume(out, model, opt, state, sched=None, generators=None)
    load_resume(out, model, opt, sched=None, generators=None) -> state
"""

import json
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from .checkpoint import CheckpointError, sha256_file
from .files import atomic_path, write_text_atomic


def resume_paths(out) -> Tuple[Path, Path]:
    """(OUT.resume.safetensors, OUT.resume.json) of the run writing OUT."""
    out = Path(out)
    return out.parent / (out.name + ".resume.safetensors"), out.parent / (out.name + ".resume.json")


def check_resume(out, run_args: dict, resume: bool):
    """Before a run writing OUT starts: without `resume`, refuse when resume files of OUT exist
    (an unfinished run is never silently started over); with it, refuse when there are none or
    when the run they hold had other arguments than `run_args` (the app leaves out those that
    do not change the result, e.g. threads, progress bars, --resume and --stop-after)."""
    weights, sidecar = resume_paths(out)
    if not resume:
        if weights.exists() or sidecar.exists():
            raise CheckpointError(f"{sidecar}: an unfinished run of {out} exists; continue it with --resume "
                                  "or delete its resume files")
        return
    if not sidecar.is_file() or not weights.is_file():
        raise CheckpointError(f"{sidecar}: no resume files of {out} (nothing to resume)")
    before = json.loads(sidecar.read_text())["args"]
    if before != run_args:
        diff = sorted(k for k in set(before) | set(run_args) if before.get(k) != run_args.get(k))
        raise CheckpointError(f"{sidecar}: the run to resume had other arguments ({', '.join(diff)})")


def save_resume(out, model: torch.nn.Module, opt: torch.optim.Optimizer, state: dict, sched=None,
                generators: Optional[Dict[str, torch.Generator]] = None):
    """The resume pair after a finished epoch: the tensors (model, optimizer), then the JSON
    (`state`, which must be JSON-serialisable, plus the optimizer's param groups, the
    scheduler's state, the states of the named generators and of torch's global RNG, and the
    tensors' SHA-256), written last."""
    from safetensors.torch import save_file
    weights, sidecar = resume_paths(out)
    tensors = {f"model.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    opt_state = opt.state_dict()
    for index, entry in opt_state["state"].items():
        for name, value in entry.items():
            if not torch.is_tensor(value):
                raise CheckpointError(f"optimizer state {index}.{name} is not a tensor ({type(value).__name__})")
            tensors[f"opt.{index}.{name}"] = value.detach().clone().contiguous()
    with atomic_path(weights) as tmp:
        save_file(tensors, str(tmp))
        sha = sha256_file(tmp)
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in opt_state["param_groups"]]
    doc = dict(state, tensors_sha256=sha, param_groups=groups,
               scheduler=sched.state_dict() if sched is not None else None,
               generators={name: g.get_state().tolist() for name, g in (generators or {}).items()},
               torch_rng=torch.get_rng_state().tolist())
    write_text_atomic(sidecar, json.dumps(doc) + "\n")


def load_resume(out, model: torch.nn.Module, opt: torch.optim.Optimizer, sched=None,
                generators: Optional[Dict[str, torch.Generator]] = None) -> dict:
    """Restore a run from its resume pair into `model`, `opt`, `sched` and the named
    `generators` (and torch's global RNG); returns the JSON document (the app's state)."""
    from safetensors.torch import load_file
    weights, sidecar = resume_paths(out)
    if not sidecar.is_file() or not weights.is_file():
        raise CheckpointError(f"{sidecar}: no resume files of {out} (nothing to resume)")
    doc = json.loads(sidecar.read_text())
    if sha256_file(weights) != doc["tensors_sha256"]:
        raise CheckpointError(f"{weights}: SHA-256 differs from the one in {sidecar.name} (an interrupted write)")
    tensors = load_file(str(weights))
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    state = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in doc["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})
    if sched is not None:
        sched.load_state_dict(doc["scheduler"])
    saved = doc.get("generators")
    if saved is None:  # the pairs train_prior.py wrote before this module: its one generator
        saved = {"generator": doc["generator"]} if "generator" in doc else {}
    for name, gen in (generators or {}).items():
        if name not in saved:
            raise CheckpointError(f"{sidecar}: no state of the random generator {name!r}")
        gen.set_state(torch.tensor(saved[name], dtype=torch.uint8))
    torch.set_rng_state(torch.tensor(doc["torch_rng"], dtype=torch.uint8))
    return doc


class Run:
    """The bookkeeping every epoch-resumable training app repeats: where to start (a fresh run
    or the last finished epoch of OUT's resume pair), the log, the per-epoch resume pair and
    the end (save, load back, delete the pair).

        run = Run(out, command, run_args, resume, model, opt, sched, {"generator": gen}, history)
        run.log("...")                       # printed and kept for the sidecar
        for epoch in range(run.first, last + 1): ...; run.epoch_done(epoch, epochs)
        paths = run.finish(save, load)       # save() -> (weights, sidecar); load() checks them
    """

    def __init__(self, out, command: str, run_args: dict, resume: bool, model, opt, sched,
                 generators: Dict[str, torch.Generator], history: dict):
        import sys
        import time
        self.out, self.command, self.run_args = out, command, run_args
        self.model, self.opt, self.sched, self.generators = model, opt, sched, generators
        self.first, self.step, self.elapsed, self.sessions, self.lines = 1, 0, 0.0, [], []
        self.history = history
        if resume:
            doc = load_resume(out, model, opt, sched, generators)
            self.first, self.step, self.elapsed = doc["epoch"] + 1, doc["step"], doc["elapsed_s"]
            self.history, self.sessions, self.lines = doc["history"], doc["sessions"], doc["log"]
            print(f"resuming {out} after epoch {doc['epoch']} (step {self.step})", file=sys.stderr, flush=True)
        self._t0 = time.time()

    def log(self, line: str):
        import sys
        self.lines.append(line)
        print(line, file=sys.stderr, flush=True)

    @property
    def wall(self) -> float:
        """Training seconds so far, every session of the run."""
        import time
        return self.elapsed + time.time() - self._t0

    def epoch_done(self, epoch: int, epochs: int):
        """After a finished epoch: the resume pair (not after the last: the model follows)."""
        if epoch < epochs:
            save_resume(self.out, self.model, self.opt,
                        {"epoch": epoch, "step": self.step, "elapsed_s": self.wall, "history": self.history,
                         "log": self.lines, "sessions": self.sessions + [{"command": self.command,
                                                                          "epochs": [self.first, epoch]}],
                         "args": self.run_args},
                        sched=self.sched, generators=self.generators)

    def all_sessions(self, last: int) -> list:
        return self.sessions + [{"command": self.command, "epochs": [self.first, last]}]

    def finish(self, save, load):
        """save() -> (weights path, sidecar path); load() must succeed on what was saved (what
        we ship must load); then the resume pair goes. Returns save()'s paths."""
        import sys
        weights, sidecar = save()
        load()
        for path in resume_paths(self.out):
            path.unlink(missing_ok=True)
        print(f"saved {weights} ({Path(weights).stat().st_size / 1e6:.2f} MB) and {sidecar}; "
              f"training {self.wall:.0f} s", file=sys.stderr)
        return weights, sidecar


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, step: int, decay: float):
    """One step of the shipped weights' EMA, with warm-up: the decay min(decay, (1 + step) /
    (10 + step)) grows to `decay`, so that the first steps' random weights wash out; buffers
    are copied."""
    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.lerp_(pm, 1 - d)
        for be, bm in zip(ema.buffers(), model.buffers()):
            be.copy_(bm)
