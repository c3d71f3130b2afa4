"""The dynamics study: real gradient-descent training of MLPs against the infinite-width NTK prediction.

For each width n and seed, an MLP in the NTK parameterization and one in muP (``ntkit.training``)
are trained by full-batch GD on L = 1/2 sum (f - y)^2 for ``steps`` steps. The NTK prediction
for the NTK-parameterized net starts from that net's own initial outputs f_0 and evolves with the
infinite-width kernel Theta (``ntkit.infinite_width`` with lambda = c) and the same learning rate
(``ntkit.dynamics.gradient_descent``). Recorded and derived:

* loss curves, actual and predicted; train and test outputs at every recorded step;
* test_error(n) = rms over test inputs and seeds of (f_T - f_T^pred) / rms(y_test), with the
  log-log slope of test_error vs n (``test_error_exponent``; lazy-training theory: -1/2);
* relative kernel change ||Theta_T - Theta_0||_F / ||Theta_0||_F on train+test inputs per
  parameterization and its log-log slope vs n (``ntk_change_exponent``);
* eigenvalues lambda_i of Theta on the training inputs and the per-mode residual ratio
  v_i^T (f_T - y) / v_i^T (f_0 - y): predicted (1 - eta lambda_i)^T, actual for the widest net.

Learning rates: eta = lr_fraction * 2 / lambda_max(Theta) for the NTK parameterization (one value
for all widths), and lr_fraction * 2 / lambda_max of each muP net's initial effective kernel.
test_error is dominated by the random initial kernel (Theta_0 - Theta ~ n^-1/2), so its estimate
from a few seeds is noisy: widths a factor 4 apart and >= 4 seeds show the fall reliably.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import jax
import numpy as np
import xarray as xr

from .. import dynamics
from ..network import MLP
from ..results import save, with_provenance
from ..theory import infinite_width
from ..training import PARAMETERIZATIONS, Network, train

__all__ = ["DynamicsStudyConfig", "run_dynamics_study", "loglog_slope", "make_data"]


@dataclass(frozen=True)
class DynamicsStudyConfig:
    """Everything the study needs; stored as JSON in the result's ``config`` attribute."""

    activation: str = "relu"
    c_b: float = 0.0
    c_w: float = 2.0
    depth: int = 3
    n_in: int = 8
    n_train: int = 32
    n_test: int = 16
    widths: tuple[int, ...] = (128, 256, 512, 1024, 2048)
    seeds: int = 2
    steps: int = 1000
    lr_fraction: float = 0.5
    records: int = 40
    ntk_records: int = 3
    seed: int = 0
    output: str = "dynamics-study"
    parameterizations: tuple[str, ...] = field(default=PARAMETERIZATIONS)

    def __post_init__(self):
        if len(self.widths) < 2 or len(set(self.widths)) < len(self.widths) or any(int(w) < 1 for w in self.widths):
            raise ValueError(f"widths must be at least two distinct positive integers, got {self.widths!r}")
        if not 0 < self.lr_fraction < 1:
            raise ValueError(f"lr_fraction must lie in (0, 1) (eta = lr_fraction * 2 / lambda_max), got {self.lr_fraction!r}")
        for name in ("seeds", "steps", "n_train", "n_test", "n_in", "records", "ntk_records"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if "ntk" not in self.parameterizations or any(p not in PARAMETERIZATIONS for p in self.parameterizations):
            raise ValueError(f"parameterizations must include 'ntk' and be among {PARAMETERIZATIONS}, got {self.parameterizations!r}")
        object.__setattr__(self, "widths", tuple(sorted(int(w) for w in self.widths)))

    @property
    def mlp(self) -> MLP:
        """The network: lambda_b = c_b and lambda_w = c_w, the NTK parameterization's learning rates."""
        return MLP(depth=self.depth, activation=self.activation, c_b=self.c_b, c_w=self.c_w, lambda_b=self.c_b, lambda_w=self.c_w)


def make_data(cfg: DynamicsStudyConfig):
    """Inputs uniform on the sphere |x|^2 = n_in; targets y = sin(2 u.x) + cos(v.x)/2 with u, v ~ N(0, I/n_in)."""
    rng = np.random.default_rng(cfg.seed)
    x = rng.normal(size=(cfg.n_train + cfg.n_test, cfg.n_in))
    x *= np.sqrt(cfg.n_in) / np.linalg.norm(x, axis=1, keepdims=True)
    u, v = rng.normal(size=(2, cfg.n_in)) / np.sqrt(cfg.n_in)
    y = np.sin(2 * x @ u) + 0.5 * np.cos(x @ v)
    return x[:cfg.n_train], y[:cfg.n_train], x[cfg.n_train:], y[cfg.n_train:]


def loglog_slope(widths, values) -> float:
    """Least-squares slope of log(values) against log(widths)."""
    return float(np.polyfit(np.log(np.asarray(widths, float)), np.log(np.asarray(values, float)), 1)[0])


def run_dynamics_study(cfg: DynamicsStudyConfig = DynamicsStudyConfig(), progress=None, write: bool = True):
    """Run the study; returns (Dataset, {name: path}) — paths empty when ``write`` is False.

    ``progress``, if given, is called as progress(step_name, done, total) after each trained network."""
    x_tr, y_tr, x_te, y_te = make_data(cfg)
    m = cfg.n_train
    theory = infinite_width(cfg.mlp, np.concatenate([x_tr, x_te]), layers="last")
    theta, K = theory["theta"].values[0], theory["K"].values[0]
    lam_max = float(np.linalg.eigvalsh(theta[:m, :m]).max())
    lr_ntk = cfg.lr_fraction * 2.0 / lam_max
    record = np.unique(np.round(np.geomspace(1, cfg.steps, cfg.records - 1)).astype(int))
    record = np.concatenate([[0], record])
    ntk_at = np.unique(np.linspace(0, cfg.steps, cfg.ntk_records + 1).astype(int))
    params_names, widths, seeds = list(cfg.parameterizations), list(cfg.widths), range(cfg.seeds)
    shape = (len(params_names), len(widths), cfg.seeds)
    f_train = np.zeros(shape + (record.size, m))
    f_test = np.zeros(shape + (record.size, cfg.n_test))
    kernels = np.zeros(shape + (ntk_at.size, m + cfg.n_test, m + cfg.n_test))
    lrs = np.zeros(shape)
    runs = len(params_names) * len(widths) * cfg.seeds
    done = 0
    for i, name in enumerate(params_names):
        for j, width in enumerate(widths):
            net = Network(cfg.mlp, cfg.n_in, width, name)
            for s in seeds:
                params = net.init(jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 1000 * s + j))
                lr = lr_ntk if name == "ntk" else cfg.lr_fraction * 2.0 / float(np.linalg.eigvalsh(net.ntk(params, x_tr)).max())
                rec = train(net, params, x_tr, y_tr, x_te, lr=lr, steps=cfg.steps, record=record, ntk_at=ntk_at)
                f_train[i, j, s], f_test[i, j, s], kernels[i, j, s], lrs[i, j, s] = rec.f_train, rec.f_test, rec.ntk, lr
                done += 1
                if progress is not None:
                    progress("training networks", done, runs)
    ntk = params_names.index("ntk")
    pred_train = np.zeros((len(widths), cfg.seeds, record.size, m))
    pred_test = np.zeros((len(widths), cfg.seeds, record.size, cfg.n_test))
    for j in range(len(widths)):
        for s in seeds:
            p = dynamics.gradient_descent(theta[:m, :m], y_tr, record, lr=lr_ntk, f0_train=f_train[ntk, j, s, 0],
                                          theta_test_train=theta[m:, :m], f0_test=f_test[ntk, j, s, 0])
            pred_train[j, s], pred_test[j, s] = p.train, p.test
    ds = _assemble(cfg, x_tr, y_tr, x_te, y_te, theta, K, record, ntk_at, f_train, f_test, kernels, lrs, pred_train, pred_test, lr_ntk)
    paths = {}
    if write:
        from .dynamics_figures import draw_dynamics_figures

        out = Path(cfg.output)
        paths["netcdf"] = save(ds, out / "dynamics_study.nc")
        paths.update(draw_dynamics_figures(ds, out))
    return ds, paths


def _assemble(cfg, x_tr, y_tr, x_te, y_te, theta, K, record, ntk_at, f_train, f_test, kernels, lrs, pred_train, pred_test, lr_ntk):
    m = cfg.n_train
    dims = ("parameterization", "width", "seed")
    change = np.linalg.norm(kernels[:, :, :, -1] - kernels[:, :, :, 0], axis=(-2, -1)) / np.linalg.norm(kernels[:, :, :, 0], axis=(-2, -1))
    ntk = list(cfg.parameterizations).index("ntk")
    rms_y = float(np.sqrt(np.mean(y_te**2)))
    test_error = np.sqrt(np.mean((f_test[ntk, :, :, -1] - pred_test[:, :, -1]) ** 2, axis=(1, 2))) / rms_y
    lam, vec = np.linalg.eigh(theta[:m, :m])
    lam, vec = lam[::-1], vec[:, ::-1]
    resid = lambda f: (f - y_tr) @ vec  # noqa: E731
    widest = f_train[ntk, -1]  # (seed, step, m)
    mode_ratio = resid(widest[:, -1]) / resid(widest[:, 0])
    ds = xr.Dataset(
        {
            "x_train": (("train", "feature"), x_tr), "y_train": (("train",), y_tr),
            "x_test": (("test", "feature"), x_te), "y_test": (("test",), y_te),
            "theta": (("a1", "a2"), theta), "K": (("a1", "a2"), K),
            "f_train": (dims + ("step", "train"), f_train), "f_test": (dims + ("step", "test"), f_test),
            "loss": (dims + ("step",), 0.5 * np.sum((f_train - y_tr) ** 2, axis=-1)),
            "pred_train": (("width", "seed", "step", "train"), pred_train),
            "pred_test": (("width", "seed", "step", "test"), pred_test),
            "pred_loss": (("width", "seed", "step"), 0.5 * np.sum((pred_train - y_tr) ** 2, axis=-1)),
            "ntk": (dims + ("ntk_step", "a1", "a2"), kernels),
            "lr": (dims, lrs),
            "ntk_change": (dims, change),
            "test_error": (("width",), test_error),
            "eigenvalue": (("mode",), lam),
            "mode_ratio_actual": (("seed", "mode"), mode_ratio),
            "mode_ratio_predicted": (("mode",), (1.0 - lr_ntk * lam) ** int(record[-1])),
        },
        coords={"parameterization": list(cfg.parameterizations), "width": list(cfg.widths), "seed": np.arange(cfg.seeds),
                "step": record, "ntk_step": ntk_at, "mode": np.arange(m)},
    )
    mean_change = change.mean(axis=2)
    ds["ntk_change_exponent"] = (("parameterization",), np.array([loglog_slope(cfg.widths, c) for c in mean_change]))
    ds["test_error_exponent"] = ((), loglog_slope(cfg.widths, test_error))
    ds["ntk_change"].attrs["long_name"] = "||Theta_T - Theta_0||_F / ||Theta_0||_F on train+test inputs"
    ds["test_error"].attrs["long_name"] = "rms(f_T - f_T^NTK prediction) / rms(y) on test inputs, NTK parameterization"
    return with_provenance(ds, {"kind": "dynamics_study", **json.loads(json.dumps(asdict(cfg))), "lr_ntk": lr_ntk},
                           seed=cfg.seed)
