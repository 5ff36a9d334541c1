"""The training loop: poly LR, a step reduces the loss, bit-identical resume, atomic checkpoints."""

import pytest

torch = pytest.importorskip("torch")

from vpseg.engine.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from vpseg.engine.schedule import poly_lr  # noqa: E402
from vpseg.engine.trainer import TrainConfig, Trainer, seed_everything  # noqa: E402
from vpseg.errors import InputError  # noqa: E402


def _setup(tmp_path, max_iters=12):
    seed_everything(0, deterministic=True)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                                torch.nn.Linear(16, 1))
    target = torch.nn.Linear(4, 1)
    torch.nn.init.constant_(target.weight, 0.5)

    def batches(i):  # the batch of iteration i: a pure function of i
        g = torch.Generator().manual_seed(1000 + i)
        x = torch.randn(32, 4, generator=g)
        return x, target(x).detach()

    def loss_fn(m, batch):
        x, y = batch
        return torch.nn.functional.mse_loss(m(x), y)

    config = TrainConfig(max_iters=max_iters, lr=1e-2, weight_decay=0.01, warmup_iters=2,
                         deterministic=True)
    return Trainer(model, loss_fn, batches, config, out_dir=tmp_path), batches, loss_fn


def test_poly_lr_by_hand():
    assert poly_lr(0, base_lr=1.0, max_iters=10, power=1.0) == 1.0
    assert poly_lr(5, base_lr=1.0, max_iters=10, power=1.0) == 0.5
    assert poly_lr(10, base_lr=1.0, max_iters=10) == 0.0
    assert poly_lr(0, base_lr=1.0, max_iters=10, warmup_iters=4, warmup_factor=0.1) == pytest.approx(0.1)


def test_one_step_reduces_the_loss_on_a_fixed_batch(tmp_path):
    trainer, batches, loss_fn = _setup(tmp_path)
    trainer.batches = lambda i: batches(0)  # always the same batch
    with torch.no_grad():
        before = float(loss_fn(trainer.model.eval(), batches(0)))
    trainer.step()
    with torch.no_grad():
        after = float(loss_fn(trainer.model.eval(), batches(0)))
    assert after < before


def test_resume_continues_bit_identically(tmp_path):
    full, *_ = _setup(tmp_path / "a")
    full.train()
    half, *_ = _setup(tmp_path / "b")
    half.train(until=5)
    resumed, *_ = _setup(tmp_path / "c")
    torch.manual_seed(12345)  # whatever the new process did before, the checkpoint restores RNGs
    resumed.resume(tmp_path / "b" / "ckpt.pt")
    assert resumed.iteration == 5
    resumed.train()
    assert resumed.history == full.history
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_time_budget_refits_the_schedule(tmp_path):
    trainer, *_ = _setup(tmp_path)
    trainer.train(seconds=0.0, refit_every=4)  # no time left at the first refit: stop there
    assert trainer.iteration == 4 and trainer.config.max_iters == 4
    assert load_checkpoint(tmp_path / "ckpt.pt")["config"]["max_iters"] == 4
    roomy, *_ = _setup(tmp_path / "b")
    roomy.train(until=8, seconds=1e9, refit_every=4)  # plenty of time: the schedule stretches
    assert roomy.iteration == 8 and roomy.config.max_iters > 10**6


def test_killed_mid_save_leaves_the_previous_checkpoint_readable(tmp_path, monkeypatch):
    trainer, *_ = _setup(tmp_path)
    trainer.train(until=3)
    path = tmp_path / "ckpt.pt"
    assert load_checkpoint(path)["iteration"] == 3

    def dies(state, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise KeyboardInterrupt  # the process is killed while writing

    monkeypatch.setattr(torch, "save", dies)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(until=5)
    monkeypatch.undo()
    assert load_checkpoint(path)["iteration"] == 3  # the old one, intact
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no half-written leftovers


def test_bad_checkpoints_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(InputError, match="junk.pt: cannot read checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    save_checkpoint(tmp_path / "other.pt", {"weights": 1})
    with pytest.raises(InputError, match="not a vpseg checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_batches_prefetch_only_beside_a_spare_core(monkeypatch):
    """The background data thread slows a CPU step when PyTorch's threads take every core."""
    from vpseg.engine import distributed
    from vpseg.engine import train as train_mod

    data = [{"x": torch.full((2,), float(i))} for i in range(5)]
    monkeypatch.setattr(train_mod.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(train_mod.torch, "get_num_threads", lambda: 2)
    inline = train_mod._batches(data, 2, distributed.DistInfo())
    assert not isinstance(inline, train_mod.Prefetch)
    gpu = train_mod._batches(data, 2, distributed.DistInfo(device="cuda:0"))
    assert isinstance(gpu, train_mod.Prefetch)
    monkeypatch.setattr(train_mod.torch, "get_num_threads", lambda: 1)
    spare = train_mod._batches(data, 2, distributed.DistInfo())
    assert isinstance(spare, train_mod.Prefetch)
    # both give the same batches: iteration 2 takes samples 4, 0 (mod the size)
    for batches in (inline, gpu, spare):
        assert batches(2)["x"][:, 0].tolist() == [4.0, 0.0]
