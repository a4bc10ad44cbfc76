"""A zero-inflated compositional WGAN-GP for microbiome profiles.

Shapes (leading axis = samples):

=================  ===========================  =========================================
tensor             shape                        range
=================  ===========================  =========================================
noise ``z``        (batch, latent_dim)          standard normal
condition          (batch, n_conditions)        one-hot (absent when unconditioned)
presence mask      (batch, n_taxa)              {0, 1} forward; sigmoid gradient backward
composition ``x``  (batch, n_taxa)              simplex, exact zeros where mask = 0
=================  ===========================  =========================================

Generator: MLP → two heads, *abundance logits* ``a`` and *presence logits* ``g``. A hard
presence mask ``m = 1[σ((g + L)/τ) > ½]`` (``L`` logistic noise; straight-through estimator: the
forward pass uses the hard 0/1 mask, the backward pass the relaxed sigmoid) selects the taxa
present; ``x = m·exp(a) / Σ m·exp(a)``. The taxon with the largest gate is always kept, so every
sample has at least one taxon. A per-sample *richness* offset ``r = head(h) + s·z₀`` (learned
scale ``s``) is added to all of a sample's gate logits, so samples differ in how many taxa
they carry (independent gates alone give a near-binomial, too narrow richness distribution).
Softmax alone never gives exact zeros (software notes §6: 0.20 synthetic vs 0.58 real zero
fraction); the gate does.

Read sampling: when trained on read counts, generated compositions are "sequenced" (Poisson
reads at a depth resampled from the training depths, then closed; straight-through gradient),
so synthetic profiles carry the sampling zeros and 1/depth granularity of real 16S data.

Lattice rendering: when the training compositions are not read counts but every row is a whole
number of units (closed integer microarray signal, e.g. HITChip), generated compositions are
rendered on such a lattice (``max(1, round(x·T))`` units per present taxon at a total ``T``
drawn from the training totals; straight-through gradient), and after training each taxon's
generated units are quantile-mapped onto its training values (marginal calibration), so the
quantised background of 1–3 units that real samples carry is reproduced.

Copula decoder (``copula_decoder``, the default): the generator's abundance and presence come
from a mixture of Gaussian copulas of the training data (k-means clusters of the samples; per
cluster, per-taxon quantile functions and the correlation of the rank-based normal scores,
zeros tied at the bottom), driven by per-taxon noise ``e`` through a fixed square root of that
correlation, plus a learned correction of the normal scores; so the
untrained generator already reproduces the training set's marginals and pairwise rank
correlations, including near-deterministic pairs that the MLP never learned.

Near-copy redraws (``near_copy_redraw='local'``): a draw the privacy filter rejects is redrawn
near its own noise rather than from scratch, so that filtering does not thin out the region
where real profiles lie close together.

Critic: sees ``log(1 + 1000 x) / log(1001)`` (MB-GAN's transform, Rong et al. 2021), the presence
mask itself (so per-taxon sparsity is visible to it) and two per-sample summaries, the fraction
of taxa present and the Shannon index, and optionally the minibatch standard deviation of its
hidden features (Karras et al. 2018) against mode collapse. Loss: Wasserstein with gradient
penalty (Gulrajani et al. 2017) on random interpolates of (x, mask). Dropout 0.5 keeps the
critic from memorising a few hundred training profiles.

Privacy term: ``copy_penalty`` × the mean of ``max(0, τ − d)/τ`` over a synthetic minibatch,
``d`` the Bray–Curtis distance to the nearest training sample and ``τ`` the near-copy filter's
leave-subject-out threshold, so the generator learns to stay as far from each training person
as other people are, instead of relying on the filter to reject copies afterwards.

Generator loss: the Wasserstein term plus ``moment_weight`` × squared gaps between a real and a
synthetic minibatch (feature matching, Salimans et al. 2016): per taxon the sorted values (1-D
Wasserstein), mean and SD of the log transform, the presence rate and the mean abundance; per
sample the sorted values, mean and SD of the Shannon index and of the fraction present. On HMP
(1,000 iterations) this moved the C2ST AUC from 0.99 to about 0.72 and the Bray–Curtis KS
from 0.27 to 0.08. The output heads start at the data's marginals (gate
bias = logit prevalence, abundance bias = mean log proportion where present).

References
----------
Gulrajani I et al. (2017). Improved training of Wasserstein GANs. NeurIPS. arXiv:1704.00028
Rong R et al. (2021). MB-GAN: microbiome simulation via generative adversarial network.
GigaScience 10(2):giab005. doi:10.1093/gigascience/giab005
Karras T et al. (2018). Progressive growing of GANs for improved quality, stability, and
variation (minibatch standard deviation). ICLR. arXiv:1710.10196
Yazıcı Y et al. (2019). The unusual effectiveness of averaging in GAN training. ICLR.
arXiv:1806.04498
Salimans T et al. (2016). Improved techniques for training GANs. NeurIPS. arXiv:1606.03498
Louizos C, Welling M, Kingma DP (2018). Learning sparse neural networks through L0
regularization (hard concrete gates). ICLR. arXiv:1712.01312
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import math
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from biofluxopt._util import DataError
from biofluxopt.data import looks_like_counts

from ._params import AUTO, BOOLEAN, DEVICE, SEED, Interval, Options, check_params

LOG_SCALE = 1000.0  # MB-GAN critic transform log(1 + 1000 x) / log(1001)
GATE_CALIBRATION_ROUNDS = 16
"""Rounds of the post-training presence-gate calibration (``gate_calibration``)."""
GATE_CALIBRATION_DRAWS = 4096
"""Fewest draws per calibration round (at least 4 × the training samples)."""
GATE_BIAS_LIMIT = 15.0
"""Bound on a calibrated gate bias: a taxon the generator cannot make visible (e.g. one that
read sampling always loses) stops there instead of drifting."""
LATTICE_MAX_MULTIPLE = 256
"""A row's lattice unit is sought as its smallest non-zero value divided by m = 1 … this."""
MARGINAL_QUANTILES = 101
"""Knots (evenly spaced probabilities 0 … 1) of the per-taxon quantile maps of
``marginal_calibration``."""
MARGINAL_MIN_PRESENT = 20
"""Fewest present training values and synthetic draws for a taxon's quantile map (fewer:
the taxon is left as generated)."""
COPULA_GATE_SHARPNESS = 10.0
"""Slope of the copula decoder's presence gate in normal scores: the gate logit of taxon j is
``10 · (g_j − Φ⁻¹(zero rate_j))`` plus the learned presence head (``copula_decoder``)."""
COPULA_MIN_EIGENVALUE = 1e-6
"""Floor on the eigenvalues of the copula correlation matrix (keeps its square root real)."""
LOCAL_REDRAW_CORRELATION = 0.9
"""``near_copy_redraw='local'``: in redraw round r a rejected draw's noise becomes
``ρ^r · old + √(1 − ρ^{2r}) · fresh`` with this ρ (0.9, 0.81, 0.73, …)."""
LOCAL_REDRAW_ROUNDS = 20
"""Rounds of local redraws before the remaining rejected draws are replaced by fresh ones."""
LATTICE_TOLERANCE = 1e-6
"""Largest distance from an integer, in lattice units, of a value on the lattice."""
RICHNESS_SCALE_RANGE = (0.05, 5.0)
"""Range of the data-derived ``richness_scale`` (``"auto"``)."""
TORCH_THREADS = 1
"""CPU threads torch uses inside :meth:`CompositionWGAN.fit` and ``sample``. Fixed, so that
the weights and samples do not depend on the machine's core count (a matrix product splits
its sums differently on 1 and on 2 threads; measured: different weights after 60 HMP
iterations). One thread is also the faster choice for these small networks (HMP, 60
iterations: 2.1–2.3 s on 1 thread vs 4.5 s on 2)."""


def _option(default, *constraints, doc: str):
    """A :class:`WGANConfig` field: default, allowed values and one-paragraph doc, declared once.

    The constructor of :class:`CompositionWGAN`, its ``_parameter_constraints``, the Parameters
    section of its docstring and checkpoints are all derived from these fields."""
    return field(default=default, metadata={"constraints": list(constraints), "doc": doc})


@dataclass(frozen=True)
class WGANConfig:
    """Options of :class:`CompositionWGAN`, declared once (stored in checkpoints, resolved:
    ``"auto"`` values replaced by the numbers ``fit`` derived from the training data)."""

    latent_dim: int = _option(
        64,
        Interval(Integral, 1, None),
        doc="Size of the generator's noise vector; 32–128 is plenty for ~100 taxa.",
    )
    hidden: int = _option(
        128,
        Interval(Integral, 1, None),
        doc="Width of the two hidden layers of generator and critic.",
    )
    iterations: int = _option(
        1000,
        Interval(Integral, 1, None),
        doc="Generator updates; each is preceded by ``n_critic`` critic updates. On HMP "
        "(250 × 100) 1,000 took 40–55 s on one busy core; 2,000 was not better.",
    )
    n_critic: int = _option(
        5, Interval(Integral, 1, None), doc="Critic updates per generator update (WGAN-GP: 5)."
    )
    batch_size: int = _option(
        64, Interval(Integral, 1, None), doc="Samples per minibatch (real and synthetic)."
    )
    lr: float = _option(
        2e-4, Interval(Real, 0, None, closed="neither"), doc="Adam learning rate for both networks."
    )
    gp_weight: float = _option(
        10.0,
        Interval(Real, 0, None, closed="neither"),
        doc="Gradient-penalty weight λ (WGAN-GP: 10).",
    )
    gate_temperature: float = _option(
        0.5,
        Interval(Real, 0, None, closed="neither"),
        doc="Temperature τ of the relaxed presence gate used for gradients; 0.3–1.",
    )
    log_scale: float | str = _option(
        LOG_SCALE,
        Interval(Real, 0, None, closed="neither"),
        AUTO,
        doc="Scale ``s`` of the critic's and the moment-matching term's transform "
        "``log(1 + s·x) / log(1 + s)`` (MB-GAN: 1,000). ``'auto'``: one over the training "
        "data's detection unit (the median over samples of the smallest non-zero relative "
        "abundance; ``log_scale_``), so that one read or signal unit maps to log 2.",
    )
    minibatch_std: bool = _option(
        True, BOOLEAN, doc="Give the critic the minibatch SD of its hidden features."
    )
    critic_dropout: float = _option(
        0.5,
        Interval(Real, 0, 1, closed="left"),
        doc="Dropout after each critic hidden layer (MB-GAN: 0.25; 0.5 measured better on HMP, "
        "where the critic otherwise memorises ~250 training profiles); 0 disables.",
    )
    moment_weight: float = _option(
        1.0,
        Interval(Real, 0, None),
        doc="Weight of the generator's moment-matching term (feature matching, Salimans et al. "
        "2016): squared gaps of per-taxon and per-sample statistics between a real and a "
        "synthetic minibatch. 0 = pure WGAN-GP.",
    )
    ema_decay: float = _option(
        0.0,
        Interval(Real, 0, 1, closed="left"),
        doc="Decay of an exponential moving average of generator weights kept as "
        "``generator_`` (Yazıcı et al. 2019); 0 keeps the last iterate. On HMP 0.999 hurt "
        "(Bray–Curtis KS 0.41 vs 0.13), 0.99 was neutral.",
    )
    read_sampling: bool = _option(
        True,
        BOOLEAN,
        doc="When ``fit`` gets read counts, pass generated compositions through Poisson read "
        "sampling at depths drawn from the training depths (straight-through gradient), in "
        "training and sampling, so synthetic profiles carry the sampling zeros and "
        "discreteness of sequenced ones. Ignored for relative-abundance input.",
    )
    depth_conditioning: bool = _option(
        False,
        BOOLEAN,
        doc="With read sampling (or lattice rendering): draw the read depth (lattice total) "
        "first and give its standardised log to generator and critic. On HMP (seeds 0, 1): "
        "Δ mean Shannon −0.04 (vs −0.06/−0.10), Bray–Curtis KS 0.03/0.05 (vs 0.08/0.09), "
        "but C2ST AUC 0.73/0.78 (vs 0.73/0.70).",
    )
    richness_scale: float | str = _option(
        "auto",
        Interval(Real, 0, None),
        AUTO,
        doc="Initial SD of a per-sample *richness* offset added to every presence-gate logit "
        "of a sample (learned on the log scale; 0 disables it). Independent per-taxon gates "
        "make the number of taxa present nearly binomial, about half as spread as in real "
        "cohorts; a shared offset lets samples differ in how many taxa they carry. ``'auto'``: "
        "the scale at which a normal offset on the training prevalences' logits reproduces the "
        "training set's per-sample sparsity SD (``richness_scale_``; fixed HMP choice before: "
        "0.75).",
    )
    gate_calibration: bool = _option(
        True,
        BOOLEAN,
        doc="After training, calibrate the presence gate on draws of the trained generator "
        "(after read sampling or the detection floor): each taxon's gate bias moves by the "
        "logit gap between its training and synthetic presence rate, and the richness scale "
        "by the ratio of the per-sample sparsity SDs, for a few rounds on a fixed set of "
        "draws, so that synthetic per-taxon and per-sample sparsity match the training set's "
        "(``gate_calibration_`` records before and after).",
    )
    sample_moment_weight: float = _option(
        1.0,
        Interval(Real, 0, None),
        doc="Extra multiplier of the per-sample terms (Shannon and fraction present) inside "
        "the moment-matching term.",
    )
    correlation_weight: float = _option(
        0.0,
        Interval(Real, 0, None),
        doc="Weight of a correlation-matching term in the generator loss: squared gaps "
        "between the taxon–taxon Pearson correlations of a real and a synthetic minibatch on "
        "the critic's transform (pairs of taxa that vary in both minibatches), averaged over "
        "pairs and multiplied by the number of taxa. 0 disables.",
    )
    copula_decoder: bool = _option(
        True,
        BOOLEAN,
        doc="Generate through a Gaussian-copula decoder fitted on the training data: each "
        "taxon's normal score ``g = A·e + head(h)`` (``e`` standard normal, one per taxon, "
        "also fed to the generator's MLP; ``A`` a square root of the correlation matrix of "
        "the training values' rank-based normal scores, zeros tied at the bottom; ``head`` a "
        "learned correction starting at 0) is sent through Φ and the taxon's training "
        "quantile function: the presence gate opens where ``g`` exceeds the taxon's zero "
        "quantile (slope :data:`COPULA_GATE_SHARPNESS`, plus a learned presence head starting "
        "at 0) and the abundance is the quantile of the log training values where present "
        "(101 knots), on the measurement scale (read counts, lattice units, else relative "
        "abundances). So an untrained generator already reproduces every taxon's marginal "
        "and the pairwise rank correlations of the training set; the GAN learns corrections. "
        "With lattice rendering the row total is the generated units' sum (with "
        "``depth_conditioning`` the drawn total is then only an input, not the rendering "
        "total; that combination was not measured). With "
        "``copula_components`` > 1 the training samples are clustered first and each draw "
        "uses one cluster's copula. ``copula_`` summarises the fit (the matrices are "
        "generator buffers).",
    )
    near_copy_redraw: str = _option(
        "local",
        Options("fresh", "local"),
        doc="How ``sample(..., near_copy_filter=f)`` replaces draws the filter rejects. "
        "``'fresh'``: further independent draws (:func:`~biofluxopt.synth.sample_filtered`). "
        "``'local'``: each rejected draw is redrawn near its own noise (round r: "
        "``ρ^r · old + √(1 − ρ^{2r}) · fresh`` for the latent and copula noise, ρ = "
        ":data:`LOCAL_REDRAW_CORRELATION`; the same copula cluster and depth or total, fresh "
        "gate and read noise) until it passes, so that the filter does not thin out the "
        "region where real samples lie close together (low-diversity profiles: a faithful "
        "sampler has about ``quantile`` of its draws there, and fresh redraws shift the "
        "Shannon distribution up); after :data:`LOCAL_REDRAW_ROUNDS` rounds the rest are "
        "fresh draws. Either way every returned sample passes the filter.",
    )
    copula_components: int | str = _option(
        "auto",
        Interval(Integral, 1, None),
        AUTO,
        doc="Mixture components of the copula decoder: the training samples' normal scores "
        "are split by k-means (10 starts, seeded) and each cluster gets its own copula "
        "(marginals and correlation), drawn in proportion to its size; one Gaussian copula "
        "cannot give the joint extremes of mixture-like cohorts (enterotypes; e.g. too few "
        "samples dominated by one taxon). ``'auto'``: ``max(1, n_train // n_taxa)``, i.e. on "
        "average at least as many samples per cluster as taxa, so that each correlation "
        "matrix is estimated from more samples than it has rows. With conditions "
        "(``fit(X, y)``) the clusters are fitted within each label (``'auto'`` per label; an "
        "integer is per label too) and a draw for a label uses that label's clusters; "
        "``copula_components_`` is the total.",
    )
    copy_penalty: float = _option(
        1.0,
        Interval(Real, 0, None),
        doc="Weight of a privacy term in the generator loss: the mean of ``max(0, τ − d)/τ`` "
        "over a synthetic minibatch, ``d`` the Bray–Curtis distance to the nearest training "
        "sample, ``τ`` the ``copy_penalty_quantile`` of the training samples' distances to the "
        "nearest sample of another subject (pass subjects as ``fit(..., groups=)``). 0 "
        "disables. Chosen on an inner validation split of HMP training samples "
        "(docs/synth.md).",
    )
    copy_penalty_quantile: float = _option(
        0.05,
        Interval(Real, 0, 1, closed="neither"),
        doc="Quantile τ of the copy penalty, in (0, 1).",
    )
    lattice_rendering: bool = _option(
        True,
        BOOLEAN,
        doc="When the training compositions are not read counts but every row lies on a "
        "lattice (all abundances integer multiples of one unit per sample, e.g. closed integer "
        "microarray signal; :func:`lattice_totals`), render generated "
        "compositions on such a lattice, in training (straight-through gradient) and "
        "sampling: at a total ``T`` drawn from the training rows' totals in units, a present "
        "taxon gets ``max(1, round(x·T))`` units (a detected taxon carries at least one), "
        "then the row is closed (``lattice_totals_``). Replaces the detection floor.",
    )
    marginal_calibration: bool = _option(
        True,
        BOOLEAN,
        doc="With lattice rendering: after training, map each taxon's generated abundance in "
        "lattice units (``x·T``, before rounding) through a monotone quantile map onto the "
        "distribution of that taxon's training values in units (where present), so that "
        "each taxon's measured marginal, including the small quantised background values, "
        "is the training set's while the generator's ranks (the joint structure) are kept "
        "(``marginal_calibration_``).",
    )
    min_abundance: float | str = _option(
        "auto",
        Interval(Real, 0, 0.5, closed="left"),
        AUTO,
        doc="Detection floor used without read sampling (relative-abundance input): generated "
        "abundances below it become exact zeros (then re-closed); 0 disables. ``'auto'``: the "
        "smallest non-zero relative abundance in the training data (nothing smaller was ever "
        "observed; ``min_abundance_``). Before: MB-GAN's fixed 1e-4.",
    )


_COPULA_ERA = ("copula_decoder", "near_copy_redraw")
"""Options whose default changed after format-2 checkpoints were first written: a checkpoint
whose ``params`` lack them was trained without them (``from_state``)."""

ESTIMATOR_OPTIONS = {
    "device": _option("cpu", DEVICE, doc="Torch device for training and sampling (``'cuda'``, …)."),
    "random_state": _option(
        0,
        SEED,
        doc="Seeds network initialisation, minibatches and noise in :meth:`fit`, the gate "
        "calibration, and :meth:`sample` when it gets no ``seed`` (global RNG state is left "
        "untouched). Same value, same weights, same samples.",
    ),
}
"""Options of :class:`CompositionWGAN` that are not training options (not in checkpoints'
``config``)."""


def _parameter_docs(options: dict) -> str:
    """numpydoc Parameters entries for ``{name: field}``."""
    lines = []
    for name, opt in options.items():
        default = opt.default
        constraints = " or ".join(str(c) for c in opt.metadata["constraints"])
        lines.append(f"{name} : {constraints}, default={default!r}")
        lines.extend(
            textwrap.wrap(opt.metadata["doc"], 88, initial_indent="    ", subsequent_indent="    ")
        )
    return "\n".join(lines)


_ALL_OPTIONS = {f.name: f for f in fields(WGANConfig)} | ESTIMATOR_OPTIONS


def _keyword_init(options: dict):
    """An ``__init__`` taking exactly ``options`` as keyword arguments and storing them
    unchanged (scikit-learn reads the parameter names from its signature)."""
    signature = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
        + [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=opt.default)
            for name, opt in options.items()
        ]
    )

    def __init__(self, **params):
        bound = signature.bind(self, **params)
        bound.apply_defaults()
        for name, value in bound.arguments.items():
            if name != "self":
                setattr(self, name, value)

    __init__.__signature__ = signature
    __init__.__doc__ = "Store the options unchanged (checked in :meth:`fit`)."
    return __init__


def _require_torch():
    import torch

    return torch


def _build_networks(n_taxa: int, n_cond: int, cfg: WGANConfig):
    torch = _require_torch()
    nn = torch.nn

    class Generator(nn.Module):
        """(batch, latent + cond) noise → (composition, presence mask), both (batch, n_taxa)."""

        def __init__(self):
            super().__init__()
            self.copula = bool(cfg.copula_decoder)
            n_noise = cfg.latent_dim
            if self.copula:  # per-taxon copula noise and the component's one-hot
                n_noise += n_taxa + int(cfg.copula_components)
            self.body = nn.Sequential(
                nn.Linear(n_noise + n_cond, cfg.hidden),
                nn.LayerNorm(cfg.hidden),
                nn.LeakyReLU(0.2),
                nn.Linear(cfg.hidden, cfg.hidden),
                nn.LayerNorm(cfg.hidden),
                nn.LeakyReLU(0.2),
            )
            self.abundance = nn.Linear(cfg.hidden, n_taxa)
            self.presence = nn.Linear(cfg.hidden, n_taxa)
            # Detection floor; set to 0 when read sampling provides the detection limit.
            self.floor = cfg.min_abundance
            if cfg.richness_scale > 0:
                # Per-sample richness offset = head(h) + exp(log_scale) · z[:, 0]; starts at a
                # pure noise offset of SD richness_scale (head weights zero).
                self.richness = nn.Linear(cfg.hidden, 1)
                nn.init.zeros_(self.richness.weight)
                nn.init.zeros_(self.richness.bias)
                self.richness_log_scale = nn.Parameter(torch.tensor(math.log(cfg.richness_scale)))
            else:
                self.richness = None
            if self.copula:
                # Filled by fit (_init_copula) or by load_state_dict.
                k = int(cfg.copula_components)
                self.register_buffer("copula_root", torch.zeros(k, n_taxa, n_taxa))
                self.register_buffer("copula_knots", torch.zeros(k, n_taxa, MARGINAL_QUANTILES))
                self.register_buffer("copula_zero_rate", torch.zeros(k, n_taxa))
                self.register_buffer("copula_weights", torch.zeros(k))
                # Condition label (index into the one-hot) of each cluster.
                self.register_buffer("copula_labels", torch.zeros(k))

        def forward(self, z, cond, gate_noise, copula_noise=None):
            """Returns (x, mask, total): ``total`` is the generated row sum on the measurement
            scale with the copula decoder (``None`` otherwise)."""
            total = None
            if self.copula:
                e, component = copula_noise
                onehot = torch.nn.functional.one_hot(component, len(self.copula_weights))
                h = self.body(torch.cat([z, cond, e, onehot.to(e.dtype)], dim=1))
                correction, presence = self.abundance(h), self.presence(h)
                logits, gate = torch.empty_like(correction), torch.empty_like(presence)
                for k in range(len(self.copula_weights)):
                    rows = component == k
                    scores = e[rows] @ self.copula_root[k].T + correction[rows]
                    logits[rows], gate[rows] = _copula_decode(
                        scores, self.copula_knots[k], self.copula_zero_rate[k], presence[rows]
                    )
            else:
                h = self.body(torch.cat([z, cond], dim=1))
                logits = self.abundance(h)
                gate = self.presence(h)
            if self.richness is not None:
                offset = self.richness(h) + self.richness_log_scale.exp() * z[:, :1]
                gate = gate + offset
            soft = torch.sigmoid((gate + gate_noise) / cfg.gate_temperature)
            hard = (soft > 0.5).to(soft.dtype)
            # Keep the most confidently present taxon so that no sample is empty.
            top = torch.nn.functional.one_hot(gate.argmax(dim=1), n_taxa).to(soft.dtype)
            hard = torch.maximum(hard, top)
            mask = hard + soft - soft.detach()  # straight-through: hard forward, soft backward
            top_logit = logits.max(dim=1, keepdim=True).values
            weights = mask * torch.exp(logits - top_logit)
            x = weights / weights.sum(dim=1, keepdim=True)
            if self.copula:
                total = (weights.sum(dim=1) * torch.exp(top_logit.squeeze(1))).detach()
            if self.floor > 0:
                # Below the detection floor → absent (the top taxon is > floor, so no row empties).
                detected = (x >= self.floor).to(x.dtype)
                mask = mask - (mask * (1.0 - detected)).detach()  # straight-through, as above
                x = x * detected
                x = x / x.sum(dim=1, keepdim=True)
            return x, mask, total

    class Critic(nn.Module):
        """(composition, mask, cond) → one score per sample, shape (batch,)."""

        def __init__(self):
            super().__init__()
            n_in = 2 * n_taxa + 2 + n_cond
            self.body = nn.Sequential(
                nn.Linear(n_in, cfg.hidden),
                nn.LeakyReLU(0.2),
                nn.Dropout(cfg.critic_dropout),
                nn.Linear(cfg.hidden, cfg.hidden),
                nn.LeakyReLU(0.2),
                nn.Dropout(cfg.critic_dropout),
            )
            self.head = nn.Linear(cfg.hidden + int(cfg.minibatch_std), 1)

        def forward(self, x, mask, cond):
            logx = _log_transform(x, cfg.log_scale)
            frac_present = mask.mean(dim=1, keepdim=True)
            shannon = _shannon(x).unsqueeze(1)
            h = self.body(torch.cat([logx, mask, frac_present, shannon, cond], dim=1))
            if cfg.minibatch_std:
                h = torch.cat([h, _minibatch_std(h)], dim=1)
            return self.head(h).squeeze(1)

    return Generator(), Critic()


class CompositionWGAN(BaseEstimator):
    """Zero-inflated compositional WGAN-GP: learns to sample microbiome profiles.

    Parameters
    ----------
    {parameters}

    Attributes
    ----------
    generator_ : torch.nn.Module
        The trained generator (eval mode).
    critic_ : torch.nn.Module
        The trained critic.
    taxa_ : list of str
        Taxon names (columns of the training frame, or ``"taxon_0"`` …).
    conditions_ : list of str
        Condition labels seen in ``fit`` (empty when unconditioned).
    history_ : pandas.DataFrame
        Per logged iteration: ``iteration``, ``critic_loss``, ``wasserstein``, ``gp``,
        ``generator_loss``, ``fake_zero_fraction``.
    fit_seconds_ : float
        Wall time of :meth:`fit` (in memory only: a saved model holds no wall-clock figure, so
        the same seed gives the same bytes).
    depths_ : numpy.ndarray of shape (n_train,) or None
        Training read depths when ``fit`` got counts and ``read_sampling`` is on.
    lattice_totals_ : numpy.ndarray of shape (n_train,) or None
        Training totals in lattice units when ``fit`` found every row on a lattice and
        ``lattice_rendering`` is on (:func:`lattice_totals`); ``None`` otherwise.
    marginal_calibration_ : dict or None
        The per-taxon quantile maps of ``marginal_calibration`` (``knots``: per taxon
        ``None`` or ``[generated, training]`` log-unit quantiles); ``None`` without lattice
        rendering.
    log_scale_ : float
        The transform scale used (``log_scale`` as given, or what ``"auto"`` derived).
    copula_ : dict or None
        The fitted Gaussian copula of ``copula_decoder`` (:func:`gaussian_copula`: ``root``,
        ``zero_rate``, ``knots``); ``None`` when the option is off.
    copy_threshold_ : float or None
        Bray–Curtis threshold τ of the copy penalty (``None`` when ``copy_penalty`` is 0).
    richness_scale_, min_abundance_ : float
        The values used: the options as given, or what ``"auto"`` derived from the data
        (:func:`auto_richness_scale`, :func:`auto_min_abundance`).
    config_ : WGANConfig
        The training options with ``"auto"`` resolved (stored in checkpoints).
    gate_calibration_ : dict or None
        Presence statistics of the training data and of the generator before and after the
        gate calibration (``None`` with ``gate_calibration=False``).
    n_train_ : int
        Training samples.

    Examples
    --------
    >>> from biofluxopt.data import load_hmp
    >>> X = load_hmp().filter(max_taxa=20).to_relative()
    >>> gan = CompositionWGAN(iterations=20, random_state=0).fit(X)
    >>> synthetic = gan.sample(5, seed=1)
    >>> synthetic.shape
    (5, 20)
    >>> bool(abs(synthetic.sum(axis=1) - 1).max() < 1e-6)
    True
    """

    _parameter_constraints: ClassVar[dict] = {
        name: opt.metadata["constraints"] for name, opt in _ALL_OPTIONS.items()
    }
    __init__ = _keyword_init(_ALL_OPTIONS)

    # ------------------------------------------------------------------ config
    @property
    def config(self) -> WGANConfig:
        """The training options as given (``"auto"`` not yet resolved)."""
        return WGANConfig(**{f.name: getattr(self, f.name) for f in fields(WGANConfig)})

    # ------------------------------------------------------------------ training
    def fit(
        self,
        X,
        y: Sequence | None = None,
        *,
        groups: Sequence | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> CompositionWGAN:
        """Train on compositions or read counts.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_taxa)
            Read counts (integers; the row sums become ``depths_`` and, with
            ``read_sampling=True``, synthetic profiles are sequenced at resampled depths) or
            relative abundances (rows are closed here). A DataFrame's columns become ``taxa_``.
        y : sequence of str of length n_samples, optional
            A covariate (e.g. cohort label) to condition on; ``sample(..., condition=label)``
            then draws from that group.
        groups : sequence of length n_samples, optional
            Subject of each sample; used only by ``copy_penalty`` (leave-subject-out
            threshold). ``None``: each sample is its own subject.
        progress : callable, optional
            Called as ``progress(done, total)`` after each generator iteration (the CLI passes
            a rich progress bar).

        Returns
        -------
        CompositionWGAN
            ``self``, fitted.
        """
        torch = _require_torch()
        check_params(self)
        x_np, self.taxa_ = _as_compositions(X)
        raw = np.asarray(X, dtype=float)
        is_counts = looks_like_counts(raw)
        self.depths_ = raw.sum(axis=1) if (is_counts and self.read_sampling) else None
        self.lattice_totals_ = (
            lattice_totals(x_np) if (self.depths_ is None and self.lattice_rendering) else None
        )
        if y is not None:
            y = np.asarray([str(v) for v in y])
            if len(y) != len(x_np):
                raise DataError(f"y has {len(y)} labels for {len(x_np)} samples", field="y")
            self.conditions_ = sorted(set(y.tolist()))
            cond_np = np.eye(len(self.conditions_))[[self.conditions_.index(v) for v in y]]
        else:
            self.conditions_ = []
            cond_np = np.zeros((len(x_np), 0))
        # Data-derived defaults ("auto"), resolved once and stored in checkpoints.
        self.richness_scale_ = (
            auto_richness_scale(x_np) if self.richness_scale == "auto" else self.richness_scale
        )
        self.min_abundance_ = (
            auto_min_abundance(x_np) if self.min_abundance == "auto" else self.min_abundance
        )
        self.log_scale_ = 1.0 / detection_unit(x_np) if self.log_scale == "auto" else self.log_scale
        # Copula clusters per condition label (one group when unconditioned); their total
        # sizes the generator's buffers.
        label_of = cond_np.argmax(axis=1) if cond_np.shape[1] else np.zeros(len(x_np), dtype=int)
        per_group = [
            max(1, int((label_of == g).sum()) // x_np.shape[1])
            if self.copula_components == "auto"
            else int(self.copula_components)
            for g in range(max(1, cond_np.shape[1]))
        ]
        self.copula_components_ = int(sum(per_group))
        cfg = dataclasses.replace(
            self.config,
            richness_scale=self.richness_scale_,
            min_abundance=self.min_abundance_,
            log_scale=self.log_scale_,
            copula_components=self.copula_components_,
        )
        self.config_ = cfg
        self.copula_ = copula = None
        if cfg.copula_decoder:
            scales = self._scales()
            values = x_np if scales is None else x_np * scales[:, None]
            parts = [
                gaussian_copula(values[label_of == g], n_components=k, seed=self.random_state)
                for g, k in enumerate(per_group)
            ]
            copula = {
                key: [item for part in parts for item in part[key]]
                for key in ("weights", "root", "zero_rate", "knots")
            }
            copula["labels"] = [g for g, part in enumerate(parts) for _ in part["weights"]]
            self.copula_ = {
                "n_components": len(copula["weights"]),
                "weights": copula["weights"],
                "labels": copula["labels"],
            }
        self.copy_threshold_ = None
        if cfg.copy_penalty > 0:
            from ._privacy import NearCopyFilter

            self.copy_threshold_ = (
                NearCopyFilter(cfg.copy_penalty_quantile).fit(x_np, groups=groups).threshold_
            )
        start = time.perf_counter()
        # Initialisation and dropout draw from torch's global RNG: fork it so that fitting is
        # reproducible and leaves the caller's RNG state untouched.
        dev = torch.device(self.device)
        cuda = [dev.index or 0] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), _torch_threads(TORCH_THREADS):
            torch.manual_seed(self.random_state)
            self._train(x_np, cond_np, cfg, progress, copula)
            self.gate_calibration_ = (
                self._calibrate_gate(x_np, cond_np) if cfg.gate_calibration else None
            )
            self.marginal_calibration_ = None
            if cfg.marginal_calibration and self.lattice_totals_ is not None:
                self.marginal_calibration_ = self._calibrate_marginals(x_np, cond_np)
        self.fit_seconds_ = time.perf_counter() - start
        self.n_train_ = len(x_np)
        return self

    def _train(self, x_np, cond_np, cfg: WGANConfig, progress, copula=None) -> None:
        torch = _require_torch()
        dev = torch.device(self.device)
        gen_net, critic = _build_networks(x_np.shape[1], self._n_inputs_cond(), cfg)
        if cfg.copula_decoder:
            _init_copula(gen_net, copula)
        else:
            _init_output_heads(gen_net, x_np)
        if self.depths_ is not None or self.lattice_totals_ is not None:
            gen_net.floor = 0.0
        gen_net.to(dev)
        critic.to(dev)
        ema = copy.deepcopy(gen_net).requires_grad_(False) if cfg.ema_decay > 0 else gen_net
        rng = torch.Generator(device="cpu").manual_seed(self.random_state + 1)
        real_all = torch.as_tensor(x_np, dtype=torch.float32, device=dev)
        cond_all = torch.as_tensor(cond_np, dtype=torch.float32, device=dev)
        opt_g = torch.optim.Adam(gen_net.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
        opt_c = torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
        n, b = len(x_np), min(cfg.batch_size, len(x_np))

        scales = self._scales()
        scales = None if scales is None else torch.as_tensor(scales, dtype=torch.float32)
        if self._uses_depth():
            # Real samples carry their own standardised log depth (or lattice total) as an
            # extra condition.
            cond_all = torch.cat([cond_all, self._depth_feature(scales).to(dev)], dim=1)

        def draw_fake(cond):
            """cond: (batch, n_cond[+1]) of real rows; the depth column is redrawn."""
            z = torch.randn(len(cond), cfg.latent_dim, generator=rng).to(dev)
            u = torch.rand(len(cond), x_np.shape[1], generator=rng).clamp(1e-6, 1 - 1e-6)
            e = None
            if cfg.copula_decoder:
                e = _copula_noise(gen_net, len(cond), rng, dev, cond[:, : len(self.conditions_)])
            d = None
            if scales is not None:
                d = scales[torch.randint(0, len(scales), (len(cond),), generator=rng)]
            if self._uses_depth():
                cond = torch.cat([cond[:, :-1], self._depth_feature(d).to(dev)], dim=1)
            x, mask, total = gen_net(z, cond, torch.log(u / (1 - u)).to(dev), e)
            if total is not None and self.depths_ is None and d is not None:
                d = total.clamp_min(1.0)  # lattice: the generated units' sum is the total
            if self.depths_ is not None:
                x, mask = _read_sampling(x, mask, d, rng)
            elif d is not None:
                x = _lattice_render(x, d.to(dev))
            return x, mask, cond

        log_every = max(1, cfg.iterations // 100)
        rows: list[dict] = []
        for it in range(1, cfg.iterations + 1):
            # ---- critic updates
            for _ in range(cfg.n_critic):
                idx = torch.randint(0, n, (b,), generator=rng).to(dev)
                real, cond = real_all[idx], cond_all[idx]
                real_mask = (real > 0).to(real.dtype)
                with torch.no_grad():
                    fake, fake_mask, fake_cond = draw_fake(cond)
                alpha = torch.rand(b, 1, generator=rng).to(dev)
                inter_x = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
                inter_m = (alpha * real_mask + (1 - alpha) * fake_mask).requires_grad_(True)
                inter_c = alpha * cond + (1 - alpha) * fake_cond
                grads = torch.autograd.grad(
                    critic(inter_x, inter_m, inter_c).sum(),
                    (inter_x, inter_m),
                    create_graph=True,
                )
                grad_norm = torch.cat(grads, dim=1).norm(dim=1)
                gp = ((grad_norm - 1.0) ** 2).mean()
                w_dist = (
                    critic(real, real_mask, cond).mean() - critic(fake, fake_mask, fake_cond).mean()
                )
                loss_c = -w_dist + cfg.gp_weight * gp
                _check_finite(loss_c.detach(), "critic loss", it)
                opt_c.zero_grad(set_to_none=True)
                loss_c.backward()
                opt_c.step()
            # ---- generator update
            idx = torch.randint(0, n, (b,), generator=rng).to(dev)
            fake, fake_mask, fake_cond = draw_fake(cond_all[idx])
            loss_g = -critic(fake, fake_mask, fake_cond).mean()
            if cfg.moment_weight > 0:
                real = real_all[torch.randint(0, n, (b,), generator=rng).to(dev)]
                loss_g = loss_g + cfg.moment_weight * _moment_gap(
                    fake,
                    fake_mask,
                    real,
                    sample_weight=cfg.sample_moment_weight,
                    scale=cfg.log_scale,
                )
            if cfg.correlation_weight > 0:
                real = real_all[torch.randint(0, n, (b,), generator=rng).to(dev)]
                loss_g = loss_g + cfg.correlation_weight * _correlation_gap(
                    fake, real, cfg.log_scale
                )
            if self.copy_threshold_:
                # Bray–Curtis between closed rows = half the L1 distance; (b, n_train).
                nearest = 0.5 * torch.cdist(fake, real_all, p=1.0).min(dim=1).values
                tau = self.copy_threshold_
                loss_g = loss_g + cfg.copy_penalty * (torch.relu(tau - nearest) / tau).mean()
            _check_finite(loss_g.detach(), "generator loss", it)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            if cfg.ema_decay > 0:
                with torch.no_grad():
                    for p_ema, p in zip(ema.parameters(), gen_net.parameters(), strict=True):
                        p_ema.lerp_(p, 1.0 - cfg.ema_decay)
            if it % log_every == 0 or it == cfg.iterations:
                rows.append(
                    {
                        "iteration": it,
                        "critic_loss": float(loss_c.detach()),
                        "wasserstein": float(w_dist.detach()),
                        "gp": float(gp.detach()),
                        "generator_loss": float(loss_g.detach()),
                        "fake_zero_fraction": float((fake.detach() == 0).float().mean()),
                    }
                )
            if progress is not None:
                progress(it, cfg.iterations)
        critic.eval()
        self.generator_, self.critic_ = ema.eval(), critic
        self.history_ = pd.DataFrame(rows)

    def _scales(self) -> np.ndarray | None:
        """Per-training-sample measurement scale: read depths (read sampling) or lattice
        totals (lattice rendering); ``None`` when neither is used."""
        depths = getattr(self, "depths_", None)
        return depths if depths is not None else getattr(self, "lattice_totals_", None)

    def _uses_depth(self) -> bool:
        return bool(self.depth_conditioning and self._scales() is not None)

    def _n_inputs_cond(self) -> int:
        """Width of the condition input: one-hot labels plus the log-depth column if used."""
        return len(self.conditions_) + int(self._uses_depth())

    def _depth_feature(self, d):
        """Standardised log read depth, shape (batch, 1), from depths of shape (batch,)."""
        log_train = np.log(self._scales())
        mu, sd = float(log_train.mean()), float(log_train.std()) or 1.0
        return ((d.float().log() - mu) / sd).unsqueeze(1)

    # ------------------------------------------------------------------ gate calibration
    def _calibrate_gate(self, x_np: np.ndarray, cond_np: np.ndarray) -> dict:
        """Match synthetic presence to the training set's, after training (see
        ``gate_calibration``). Runs under :meth:`fit`'s forked RNG and thread setting.

        A fixed set of ``m`` draws (common random numbers: the same noise every round, so the
        rounds converge instead of chasing sampling noise) is regenerated after each update:
        taxon j's gate bias moves by ``logit(p_j / d_j) − logit(o_j)`` (``p_j`` training
        presence rate, ``o_j`` synthetic gate-open rate, ``d_j`` the share of open gates whose
        abundance clears the detection floor; rates clipped to [½/m, 1 − ½/m]; step at most
        ±2). Where even an open gate cannot reach ``p_j`` (floor zeros), the taxon's abundance
        bias rises by ``log(p_j / q_j)`` (at most 1) instead. The richness log-scale moves by
        ``1.5 · log(sd_train / sd_synthetic)`` of the per-sample fraction of taxa present (at
        most ±0.5). Returns the synthetic statistics before and after, with the
        training targets.
        """
        torch = _require_torch()
        gen = self.generator_
        present = x_np > 0
        target_taxon = present.mean(axis=0)
        target_sd = float(present.mean(axis=1).std())
        m = max(GATE_CALIBRATION_DRAWS, 4 * len(x_np))
        eps = 0.5 / m
        pick = np.random.default_rng(self.random_state).integers(0, len(cond_np), size=m)
        cond = torch.as_tensor(cond_np[pick], dtype=torch.float32)

        def stats():
            """Synthetic presence per taxon, SD of the per-sample fraction present, and the
            gate-open rate per taxon (the same draws without the detection floor)."""
            rates = []
            floor = gen.floor
            for gen.floor in (floor, 0.0) if floor > 0 else (floor,):
                rng = torch.Generator(device="cpu").manual_seed(self.random_state + 2)
                with torch.no_grad():
                    rates.append((self._generate(cond, rng) > 0).double().cpu().numpy())
            gen.floor = floor
            pres = rates[0]
            return pres.mean(axis=0), float(pres.mean(axis=1).std()), rates[-1].mean(axis=0)

        def summary(q, sd):
            return {
                "mean_sparsity": float(1 - q.mean()),
                "sd_sparsity": sd,
                "taxon_presence_mean_abs_delta": float(np.abs(q - target_taxon).mean()),
            }

        q, sd, opened = stats()
        before = summary(q, sd)
        for _ in range(GATE_CALIBRATION_ROUNDS):
            # Without read sampling, an open gate can still give a zero (abundance below the
            # detection floor): the gate aims at p / P(detected | open); where even a fully
            # open gate cannot reach p, the taxon's abundance bias rises instead.
            detected = np.clip(q / np.maximum(opened, eps), eps, 1.0)
            gate_target = target_taxon / detected
            step = np.clip(
                _logit(np.clip(gate_target, eps, 1 - eps)) - _logit(np.clip(opened, eps, 1 - eps)),
                -2.0,
                2.0,
            )
            lift = np.where(
                (gate_target >= 1 - eps) & (q < target_taxon),
                np.clip(2 * np.log(np.maximum(target_taxon, eps) / np.maximum(q, eps)), 0.0, 1.0),
                0.0,
            )
            with torch.no_grad():
                bias = gen.presence.bias
                bias.add_(torch.as_tensor(step, dtype=bias.dtype, device=bias.device))
                bias.clamp_(-GATE_BIAS_LIMIT, GATE_BIAS_LIMIT)
                if lift.any():
                    abundance = gen.abundance.bias
                    abundance.add_(torch.as_tensor(lift, dtype=abundance.dtype, device=bias.device))
                if gen.richness is not None and sd > 0 and target_sd > 0:
                    gen.richness_log_scale.add_(
                        float(np.clip(1.5 * math.log(target_sd / sd), -0.5, 0.5))
                    )
            q, sd, opened = stats()
        return {
            "rounds": GATE_CALIBRATION_ROUNDS,
            "draws": m,
            "training": summary(target_taxon, target_sd),
            "before": before,
            "after": summary(q, sd),
        }

    def _calibrate_marginals(self, x_np: np.ndarray, cond_np: np.ndarray) -> dict:
        """Per-taxon quantile maps of generated lattice units onto the training values (see
        ``marginal_calibration``). Runs under :meth:`fit`'s forked RNG and thread setting.

        ``m = max(4,096, 4 × n_train)`` draws of the trained generator (after the gate
        calibration) give each taxon's generated units ``x·T`` where present; the map sends
        the quantiles at :data:`MARGINAL_QUANTILES` evenly spaced probabilities of their log
        onto the same quantiles of the log of the training values in units (linear between
        knots, constant beyond). Taxa with fewer than :data:`MARGINAL_MIN_PRESENT` present
        values on either side get no map (``None``).
        """
        torch = _require_torch()
        m = max(GATE_CALIBRATION_DRAWS, 4 * len(x_np))
        pick = np.random.default_rng(self.random_state + 3).integers(0, len(cond_np), size=m)
        cond = torch.as_tensor(cond_np[pick], dtype=torch.float32)
        rng = torch.Generator(device="cpu").manual_seed(self.random_state + 3)
        with torch.no_grad():
            generated = self._generate(cond, rng, units=True).cpu().numpy()
        training = np.round(x_np * self.lattice_totals_[:, None])
        probs = np.linspace(0.0, 1.0, MARGINAL_QUANTILES)
        knots: list = []
        for j in range(x_np.shape[1]):
            syn, real = generated[:, j], training[:, j]
            syn, real = syn[syn > 0], real[real > 0]
            if min(len(syn), len(real)) < MARGINAL_MIN_PRESENT:
                knots.append(None)
                continue
            knots.append(
                [
                    np.quantile(np.log(syn), probs).tolist(),
                    np.quantile(np.log(real), probs).tolist(),
                ]
            )
        return {"draws": m, "quantiles": MARGINAL_QUANTILES, "knots": knots}

    # ------------------------------------------------------------------ sampling
    def _noise(self, n: int, rng, cond=None) -> dict:
        """The generator's input noise for ``n`` draws, in :meth:`_generate`'s order: latent
        ``z``, gate noise ``u``, copula noise ``e`` (noise, component) and depth or total
        ``d`` (``None`` where unused)."""
        torch = _require_torch()
        dev = next(self.generator_.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=rng)
        u = torch.rand(n, len(self.taxa_), generator=rng).clamp(1e-6, 1 - 1e-6)
        e = None
        if self.copula_decoder:
            e = _copula_noise(self.generator_, n, rng, dev, cond)
        d = None
        scales = self._scales()
        if scales is not None:
            scales = torch.as_tensor(scales, dtype=torch.float32)
            d = scales[torch.randint(0, len(scales), (n,), generator=rng)]
        return {"z": z, "u": u, "e": e, "d": d}

    def _generate(self, cond, rng, *, units: bool = False, noise: dict | None = None):
        """Raw draws for condition rows ``cond`` (batch, n_conditions): closed compositions of
        shape (batch, n_taxa), read-sampled when trained on counts. No gradients needed.
        ``noise``: the input noise (:meth:`_noise`; default: drawn here from ``rng``)."""
        torch = _require_torch()
        dev = next(self.generator_.parameters()).device
        noise = self._noise(len(cond), rng, cond) if noise is None else noise
        z, u, e, d = noise["z"], noise["u"], noise["e"], noise["d"]
        if d is not None and self._uses_depth():
            cond = torch.cat([cond, self._depth_feature(d)], dim=1)
        x, mask, total = self.generator_(z.to(dev), cond.to(dev), torch.log(u / (1 - u)).to(dev), e)
        if total is not None and getattr(self, "depths_", None) is None and d is not None:
            d = total.clamp_min(1.0)  # lattice: the generated units' sum is the total
        if getattr(self, "depths_", None) is not None:
            x, _ = _read_sampling(x, mask, d, rng, straight_through=False)
        elif d is not None:
            if units:  # continuous lattice units x·T, before any map and rounding
                return x.double() * d.double().to(dev).unsqueeze(1)
            calibration = getattr(self, "marginal_calibration_", None)
            x = _lattice_render(
                x,
                d.to(dev),
                straight_through=False,
                knots=None if calibration is None else calibration["knots"],
            )
        return x

    def sample(
        self,
        n: int,
        *,
        seed: int | None = None,
        condition: str | None = None,
        near_copy_filter=None,
    ) -> np.ndarray:
        """Draw synthetic compositions.

        Parameters
        ----------
        n : int
            Number of samples.
        seed : int, optional
            Same seed, same samples; default: ``random_state``.
        condition : str, optional
            A label seen in ``fit(X, y)``; required for a conditioned model.
        near_copy_filter : NearCopyFilter, optional
            A fitted privacy filter (``NearCopyFilter().fit(train, groups=subjects)``): samples
            closer to a training sample than its threshold are rejected and replaced by
            further draws: near the rejected draw's own noise (``near_copy_redraw='local'``,
            the default) or fresh ones (``'fresh'``, :func:`~biofluxopt.synth.sample_filtered`);
            deterministic per seed. ``None`` returns the raw draws.

        Returns
        -------
        numpy.ndarray of shape (n, n_taxa)
            Rows on the simplex (sum to 1, float64) with exact zeros for absent taxa.
        """
        seed = self.random_state if seed is None else seed
        if near_copy_filter is not None:
            return self.sample_with_filter(n, near_copy_filter, seed=seed, condition=condition)[0]
        torch = _require_torch()
        cond = self._condition_rows(n, condition)
        rng = torch.Generator(device="cpu").manual_seed(seed)
        with torch.no_grad(), _torch_threads(TORCH_THREADS):
            x = self._generate(cond, rng)
        return self._closed_numpy(x)

    def sample_with_filter(
        self, n: int, near_copy_filter, *, seed: int | None = None, condition: str | None = None
    ) -> tuple[np.ndarray, int]:
        """``sample(n, seed=, condition=, near_copy_filter=)`` and how many draws the filter
        rejected on the way (redraws as ``near_copy_redraw`` says).

        Returns
        -------
        (x, n_rejected) : (numpy.ndarray of shape (n, n_taxa), int)
            As :func:`~biofluxopt.synth.sample_filtered` returns them: the samples, all passing
            the filter, and the number of rejected draws (every rejected redraw counted).
        """
        seed = self.random_state if seed is None else seed
        if self.near_copy_redraw == "local":
            return self._sample_local(n, seed, condition, near_copy_filter)
        from ._privacy import sample_filtered

        return sample_filtered(
            lambda m, s: self.sample(m, seed=s, condition=condition),
            n,
            near_copy_filter,
            seed=seed,
        )

    def _closed_numpy(self, x) -> np.ndarray:
        x = x.double().cpu().numpy()
        if not np.isfinite(x).all():
            raise DataError(
                "the generator produced non-finite values (corrupt weights?)", field="gan"
            )
        return x / x.sum(axis=1, keepdims=True)

    def _sample_local(
        self, n: int, seed: int, condition, near_copy_filter
    ) -> tuple[np.ndarray, int]:
        """``sample`` with ``near_copy_redraw='local'``: rejected draws are redrawn near their
        own noise (see the option), the remainder after the last round by fresh draws."""
        torch = _require_torch()
        from ._privacy import sample_filtered

        cond = self._condition_rows(n, condition)
        rng = torch.Generator(device="cpu").manual_seed(seed)
        with torch.no_grad(), _torch_threads(TORCH_THREADS):
            noise = self._noise(n, rng, cond)
            x = self._closed_numpy(self._generate(cond, rng, noise=noise))
            rejected = np.flatnonzero(~near_copy_filter.mask(x))
            n_rejected = len(rejected)
            for r in range(1, LOCAL_REDRAW_ROUNDS + 1):
                if not len(rejected):
                    return x, n_rejected
                round_seed = int(np.random.SeedSequence([seed, r]).generate_state(1)[0])
                rng = torch.Generator(device="cpu").manual_seed(round_seed)
                rows = torch.as_tensor(rejected)
                fresh = self._noise(len(rejected), rng, cond[rows])
                rho = LOCAL_REDRAW_CORRELATION**r
                keep = math.sqrt(1.0 - rho**2)
                old = {k: v[rows] if torch.is_tensor(v) else v for k, v in noise.items()}
                near = {"z": rho * old["z"] + keep * fresh["z"], "u": fresh["u"], "d": old["d"]}
                near["e"] = None
                if noise["e"] is not None:
                    e_old, component = noise["e"][0][rows], noise["e"][1][rows]
                    near["e"] = (rho * e_old + keep * fresh["e"][0], component)
                redrawn = self._closed_numpy(self._generate(cond[rows], rng, noise=near))
                passed = near_copy_filter.mask(redrawn)
                x[rejected[passed]] = redrawn[passed]
                rejected = rejected[~passed]
                n_rejected += len(rejected)
        if len(rejected):
            x[rejected], more = sample_filtered(
                lambda m, s: self.sample(m, seed=s, condition=condition),
                len(rejected),
                near_copy_filter,
                seed=int(np.random.SeedSequence([seed, 0]).generate_state(1)[0]),
            )
            n_rejected += more
        return x, n_rejected

    def _condition_rows(self, n: int, condition):
        """The condition input (n, n_conditions) of ``n`` draws of ``condition``."""
        torch = _require_torch()
        if not hasattr(self, "generator_"):
            raise DataError("CompositionWGAN is not fitted; call fit(X) or load a checkpoint")
        if n < 1:
            raise DataError(f"n must be >= 1, got {n}", field="n")
        n_cond = len(self.conditions_)
        cond = torch.zeros(n, n_cond)
        if n_cond:
            if condition not in self.conditions_:
                raise DataError(
                    f"condition must be one of {self.conditions_}, got {condition!r}",
                    field="condition",
                )
            cond[:, self.conditions_.index(condition)] = 1.0
        elif condition is not None:
            raise DataError("this model was trained without conditions", field="condition")
        return cond

    # ------------------------------------------------------------------ persistence
    def state_dict(self) -> dict:
        """Weights as a flat ``{name: tensor}`` dict (``generator.*``, ``critic.*``)."""
        out = {f"generator.{k}": v for k, v in self.generator_.state_dict().items()}
        out.update({f"critic.{k}": v for k, v in self.critic_.state_dict().items()})
        return {k: v.detach().cpu().contiguous() for k, v in out.items()}

    def metadata(self) -> dict:
        """JSON-serialisable description: resolved config, the options as given, taxa,
        conditions and training summary."""
        return {
            "config": asdict(self.config_),
            "params": {name: getattr(self, name) for name in _ALL_OPTIONS},
            "taxa": list(self.taxa_),
            "conditions": list(self.conditions_),
            "seed": self.random_state,
            "n_train": int(getattr(self, "n_train_", 0)),
            "depths": (
                None if getattr(self, "depths_", None) is None else [float(d) for d in self.depths_]
            ),
            "lattice_totals": (
                None
                if getattr(self, "lattice_totals_", None) is None
                else [float(t) for t in self.lattice_totals_]
            ),
            "marginal_calibration": getattr(self, "marginal_calibration_", None),
            "copy_threshold": getattr(self, "copy_threshold_", None),
            "copula": getattr(self, "copula_", None),
            "gate_calibration": getattr(self, "gate_calibration_", None),
            "final": (self.history_.iloc[-1].to_dict() if len(self.history_) else {}),
        }

    @classmethod
    def from_state(cls, metadata: dict, state: dict, *, device: str = "cpu") -> CompositionWGAN:
        """Rebuild a fitted model from :meth:`metadata` and :meth:`state_dict` output.

        Checkpoints without ``params`` (format 1) get their resolved ``config`` as
        parameters; options that did not exist when they were written take the value that
        reproduces how they were trained (no richness offset, no copy penalty, no gate
        calibration)."""
        legacy = {
            "richness_scale": 0.0,
            "copy_penalty": 0.0,
            "gate_calibration": False,
            "lattice_rendering": False,
            "marginal_calibration": False,
            "copula_decoder": False,
            "near_copy_redraw": "fresh",
        }
        cfg = WGANConfig(**{**legacy, **metadata["config"]})
        params = metadata.get("params") or {
            **asdict(cfg),
            "random_state": int(metadata.get("seed", 0)),
        }
        # Options added since the checkpoint was written keep the behaviour it was trained with.
        params = {**{k: v for k, v in legacy.items() if k in _COPULA_ERA}, **params}
        params = {**params, "device": device}
        model = cls(**{k: v for k, v in params.items() if k in _ALL_OPTIONS})
        model.config_ = cfg
        model.richness_scale_, model.min_abundance_ = cfg.richness_scale, cfg.min_abundance
        model.log_scale_ = cfg.log_scale
        model.taxa_ = list(metadata["taxa"])
        model.conditions_ = list(metadata.get("conditions", []))
        depths = metadata.get("depths")
        model.depths_ = None if depths is None else np.asarray(depths, dtype=float)
        gen_net, critic = _build_networks(len(model.taxa_), model._n_inputs_cond(), cfg)
        gen_net.load_state_dict(_prefixed(state, "generator."))
        critic.load_state_dict(_prefixed(state, "critic."))
        model.generator_, model.critic_ = gen_net.to(device).eval(), critic.to(device).eval()
        model.history_ = pd.DataFrame([metadata["final"]] if metadata.get("final") else [])
        model.n_train_ = int(metadata.get("n_train", 0))
        totals = metadata.get("lattice_totals")
        model.lattice_totals_ = None if totals is None else np.asarray(totals, dtype=float)
        if model.depths_ is not None or model.lattice_totals_ is not None:
            model.generator_.floor = 0.0
        model.copy_threshold_ = metadata.get("copy_threshold")
        model.gate_calibration_ = metadata.get("gate_calibration")
        model.marginal_calibration_ = metadata.get("marginal_calibration")
        model.copula_ = metadata.get("copula")
        return model


CompositionWGAN.__doc__ = CompositionWGAN.__doc__.replace(
    "{parameters}", textwrap.indent(_parameter_docs(_ALL_OPTIONS), "    ").lstrip()
)


def auto_richness_scale(x: np.ndarray) -> float:
    """The ``richness_scale`` that ``"auto"`` resolves to for training compositions ``x``.

    With gate logits ``logit(p_j)`` (training prevalences, clipped to [0.02, 0.98] as the
    generator's initial biases) plus one normal offset ``r ~ N(0, s²)`` per sample, the
    fraction of taxa present has variance ``Var_r[E(f | r)] + E_r[Var(f | r)]`` (the second
    term binomial). Returns the ``s`` in [0.05, 5] at which it equals the training set's
    variance of the per-sample fraction present (bisection, 40-node Gauss–Hermite); 0.05
    when the binomial part alone already exceeds it.

    Parameters
    ----------
    x : numpy.ndarray of shape (n_samples, n_taxa)
        Training compositions or counts (only ``x > 0`` is used).

    Returns
    -------
    float
    """
    present = np.asarray(x) > 0
    target = float(present.mean(axis=1).var())
    logits = _logit(present.mean(axis=0).clip(0.02, 0.98))
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    weights = weights / weights.sum()
    n_taxa = present.shape[1]

    def variance(s: float) -> float:
        p = 1.0 / (1.0 + np.exp(-(logits[None, :] + s * nodes[:, None])))  # (nodes, taxa)
        mean_f = p.mean(axis=1)
        within = (p * (1 - p)).mean(axis=1) / n_taxa
        overall = float(weights @ mean_f)
        return float(weights @ (mean_f - overall) ** 2 + weights @ within)

    low, high = RICHNESS_SCALE_RANGE
    if variance(low) >= target:
        return low
    if variance(high) <= target:
        return high
    for _ in range(50):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if variance(mid) < target else (low, mid)
    return round(0.5 * (low + high), 6)


def auto_min_abundance(x: np.ndarray) -> float:
    """The ``min_abundance`` that ``"auto"`` resolves to: the smallest non-zero relative
    abundance in the training compositions ``x`` (shape (n_samples, n_taxa), rows closed), at
    most 0.01. Read counts give 1 / (deepest sample's reads); HITChip signal, its weakest
    detected group."""
    x = np.asarray(x, dtype=float)
    rel = x / x.sum(axis=1, keepdims=True)
    nonzero = rel[rel > 0]
    return float(min(nonzero.min(), 0.01)) if nonzero.size else 0.0


def lattice_totals(x: np.ndarray) -> np.ndarray | None:
    """Per-row totals in lattice units, or ``None`` when the rows are not all on a lattice.

    A row is on a lattice when all its non-zero values are integer multiples of one unit
    ``u``: closed integer signal (HITChip) or closed read counts. The unit is sought as the
    row's smallest non-zero value divided by m = 1 … :data:`LATTICE_MAX_MULTIPLE` (smallest m
    first, which gives the greatest common divisor), a value being on the lattice within
    :data:`LATTICE_TOLERANCE` units; so a row whose smallest value is more than 256 units is
    not recognised. Continuous
    abundances (e.g. shotgun profiler output) are on no lattice and give ``None``; so is a
    table with any row off a lattice.

    Parameters
    ----------
    x : numpy.ndarray of shape (n_samples, n_taxa)
        Non-negative rows, each with a non-zero entry (closed here).

    Returns
    -------
    numpy.ndarray of shape (n_samples,) or None
        The row sums in units (``1 / u`` of the closed row), when every row is on a lattice.
    """
    rel, smallest = _closed_with_smallest(x)
    totals = np.full(len(rel), np.nan)
    for m in range(1, LATTICE_MAX_MULTIPLE + 1):
        todo = np.flatnonzero(np.isnan(totals))
        if not len(todo):
            break
        units = rel[todo] * (m / smallest[todo, None])
        whole = np.round(units)
        on = (np.abs(units - whole) <= LATTICE_TOLERANCE).all(axis=1)
        totals[todo[on]] = whole[on].sum(axis=1)
    return None if np.isnan(totals).any() else totals


def _lattice_render(x, totals, *, straight_through: bool = True, knots=None):
    """Put compositions on a lattice: ``max(1, round(x·T))`` units for each present taxon
    (``x > 0``) at the row's total ``T``, then closed.

    Parameters
    ----------
    x : torch.Tensor of shape (batch, n_taxa)
        Closed compositions from the generator.
    totals : torch.Tensor of shape (batch,)
        Lattice total of each row (drawn from the training totals by the caller).

    Returns
    -------
    torch.Tensor of shape (batch, n_taxa)
        Forward: the closed lattice values (float64 when ``straight_through`` is off, for
        sampling); backward: identity to ``x``. Zeros stay zeros; nothing present is lost.
    """
    torch = _require_torch()
    if not straight_through:
        x = x.double()
    scaled = x.detach() * totals.to(x.dtype).unsqueeze(1)
    if knots is not None:
        scaled = torch.as_tensor(
            _quantile_map(scaled.cpu().numpy(), knots), dtype=x.dtype, device=x.device
        )
    units = torch.where(x.detach() > 0, torch.round(scaled).clamp_min(1.0), 0.0)
    rendered = units / units.sum(dim=1, keepdim=True)
    return rendered if not straight_through else x + (rendered - x).detach()


def detection_unit(x: np.ndarray) -> float:
    """The typical detection unit of compositions ``x`` (n_samples, n_taxa): the median over
    samples of the smallest non-zero relative abundance (one read at a typical depth; one
    signal unit of a typical HITChip sample)."""
    return float(np.median(_closed_with_smallest(x)[1]))


def _closed_with_smallest(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` closed to relative abundances, and each row's smallest non-zero value."""
    x = np.asarray(x, dtype=float)
    rel = x / x.sum(axis=1, keepdims=True)
    return rel, np.where(rel > 0, rel, np.inf).min(axis=1)


def _quantile_map(units: np.ndarray, knots: list) -> np.ndarray:
    """Map each column's non-zero values through its quantile map (``marginal_calibration``).

    ``knots[j]`` is ``None`` (column unchanged) or ``[generated, training]``, two
    non-decreasing lists of log-unit quantiles at the same probabilities; a value's log is
    interpolated linearly between them (constant beyond the ends). Zeros stay zero."""
    out = np.array(units, dtype=float)
    for j, pair in enumerate(knots):
        if pair is None:
            continue
        present = out[:, j] > 0
        if present.any():
            generated, training = (np.asarray(k, dtype=float) for k in pair)
            out[present, j] = np.exp(np.interp(np.log(out[present, j]), generated, training))
    return out


def gaussian_copula(values: np.ndarray, *, n_components: int = 1, seed: int = 0) -> dict:
    """A mixture of Gaussian copulas (``copula_decoder``): the samples' rank-based normal
    scores are split into ``n_components`` clusters by k-means (10 starts, ``seed``; one
    cluster when ``n_components`` is 1 or there are fewer samples than twice that), and each
    cluster gets its :func:`_single_copula`.

    Returns
    -------
    dict
        ``weights`` (cluster shares, summing to 1), and per cluster (leading axis) ``root``,
        ``zero_rate`` and ``knots`` as :func:`_single_copula` gives them.
    """
    from scipy.special import ndtri
    from scipy.stats import rankdata

    values = np.asarray(values, dtype=float)
    n = len(values)
    labels = np.zeros(n, dtype=int)
    if n_components > 1 and n >= 2 * n_components:
        from sklearn.cluster import KMeans

        scores = ndtri((rankdata(values, axis=0) - 0.5) / n)
        labels = KMeans(n_components, n_init=10, random_state=seed % 2**32).fit_predict(scores)
    parts = [_single_copula(values[labels == k]) for k in np.unique(labels)]
    weights = np.bincount(labels) / n
    return {
        "weights": weights[weights > 0].tolist(),
        **{key: [part[key] for part in parts] for key in ("root", "zero_rate", "knots")},
    }


def _copula_noise(gen_net, n: int, rng, dev, cond=None):
    """Per-taxon standard normal noise (n, n_taxa) and a mixture component per draw (n,),
    drawn with ``rng`` in proportion to the components' training shares; with condition rows
    ``cond`` (n, n_conditions one-hot), among the clusters of each row's condition."""
    torch = _require_torch()
    weights = gen_net.copula_weights.detach().cpu().double()
    e = torch.randn(n, gen_net.copula_root.shape[-1], generator=rng)
    if cond is not None and cond.shape[1] > 0:
        labels = gen_net.copula_labels.detach().cpu().long()
        per_row = weights[None, :] * cond.detach().cpu().double()[:, labels]
        component = torch.multinomial(per_row, 1, generator=rng).squeeze(1)
    elif len(weights) == 1:
        component = torch.zeros(n, dtype=torch.long)
    else:
        component = torch.multinomial(weights, n, replacement=True, generator=rng)
    return e.to(dev), component.to(dev)


def _single_copula(values: np.ndarray) -> dict:
    """Gaussian copula of training values (``copula_decoder``): a root of the normal-score
    correlation matrix and each taxon's zero rate and log-quantiles where present.

    Parameters
    ----------
    values : numpy.ndarray of shape (n_samples, n_taxa)
        Non-negative training values on the measurement scale (read counts, lattice units or
        relative abundances).

    Returns
    -------
    dict
        ``root`` (n_taxa × n_taxa nested list ``A`` with ``A Aᵀ`` the correlation of the
        rank-based normal scores ``Φ⁻¹((rank − ½) / n)``, ties, zeros included, at their
        average rank; eigenvalues floored at :data:`COPULA_MIN_EIGENVALUE`, unit diagonal),
        ``zero_rate`` (per taxon) and ``knots`` (per taxon the log-values where present at
        :data:`MARGINAL_QUANTILES` evenly spaced probabilities; a taxon never present gets the
        table's smallest non-zero value).
    """
    from scipy.special import ndtri
    from scipy.stats import rankdata

    values = np.asarray(values, dtype=float)
    n, k = values.shape
    scores = ndtri((rankdata(values, axis=0) - 0.5) / n)
    sd = scores.std(axis=0)
    varies = sd > 0
    corr = np.eye(k)
    if varies.sum() > 1:
        corr[np.ix_(varies, varies)] = np.corrcoef(scores[:, varies], rowvar=False)
    eigval, eigvec = np.linalg.eigh((corr + corr.T) / 2)
    root = eigvec * np.sqrt(np.maximum(eigval, COPULA_MIN_EIGENVALUE))
    root /= np.linalg.norm(root, axis=1, keepdims=True)
    present = values > 0
    smallest = float(values[present].min()) if present.any() else 1.0
    probs = np.linspace(0.0, 1.0, MARGINAL_QUANTILES)
    knots = [
        (
            np.quantile(np.log(values[present[:, j], j]), probs)
            if present[:, j].any()
            else np.full(MARGINAL_QUANTILES, math.log(smallest))
        ).tolist()
        for j in range(k)
    ]
    return {
        "root": root.tolist(),
        "zero_rate": (1.0 - present.mean(axis=0)).tolist(),
        "knots": knots,
    }


def _init_copula(gen_net, copula: dict) -> None:
    """Load a fitted :func:`gaussian_copula` into the generator's buffers and zero its
    abundance (score correction) and presence heads, so that the untrained generator is the
    copula itself. A fit that found fewer clusters than asked leaves the others at weight 0
    (never drawn)."""
    torch = _require_torch()
    k = len(copula["weights"])
    with torch.no_grad():
        gen_net.copula_weights.zero_()
        gen_net.copula_weights[:k] = torch.as_tensor(np.asarray(copula["weights"]))
        gen_net.copula_labels[:k] = torch.as_tensor(np.asarray(copula.get("labels", [0] * k)))
        for name in ("root", "knots", "zero_rate"):
            getattr(gen_net, f"copula_{name}")[:k] = torch.as_tensor(np.asarray(copula[name]))
        for head in (gen_net.abundance, gen_net.presence):
            head.weight.zero_()
            head.bias.zero_()


def _copula_decode(scores, knots, zero_rate, presence):
    """Normal scores (batch, n_taxa) → (log-value logits, presence-gate logits).

    The gate logit is ``COPULA_GATE_SHARPNESS · (g − Φ⁻¹(zero rate))`` plus ``presence`` (the
    learned head); the abundance is the taxon's log-quantile at ``(Φ(g) − zero rate) / (1 −
    zero rate)`` (linear between the knots, clipped to [0, 1]), differentiable in ``g``."""
    torch = _require_torch()
    p0 = zero_rate.clamp(1e-4, 1 - 1e-4)
    gate = COPULA_GATE_SHARPNESS * (scores - torch.special.ndtri(p0)) + presence
    u = ((torch.special.ndtr(scores) - zero_rate) / (1 - zero_rate).clamp_min(1e-6)).clamp(0, 1)
    pos = u * (knots.shape[1] - 1)
    low = pos.detach().floor().clamp(0, knots.shape[1] - 2).long()
    table = knots.T  # (quantiles, n_taxa)
    below, above = table.gather(0, low), table.gather(0, low + 1)
    return below + (pos - low) * (above - below), gate


def _logit(p):
    return np.log(p / (1 - p))


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads, then restore the caller's setting."""
    torch = _require_torch()
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _check_finite(value, what: str, iteration: int) -> None:
    """Stop training with a DataError (not NaN weights) when a loss is not finite."""
    if not math.isfinite(float(value)):
        raise DataError(
            f"GAN training diverged: non-finite {what} at iteration {iteration}; try another "
            "seed, fewer iterations or more training samples",
            field="gan",
        )


def _minibatch_std(h):
    """Mean over features of the minibatch SD of ``h`` (batch, hidden), shape (batch, 1).

    Features constant over the minibatch (likely with small batches and dropout) contribute 0
    and stay out of the SD's graph: torch's SD has a NaN second derivative at 0, which the
    gradient penalty differentiates, and it turned every weight into NaN on tiny data sets.
    """
    std = h.std(dim=0, unbiased=False)
    varies = std.detach() > 0
    if not bool(varies.all()):
        std = h.new_zeros(h.shape[1])
        if bool(varies.any()):
            std = std.masked_scatter(varies, h[:, varies].std(dim=0, unbiased=False))
    return std.mean().expand(h.shape[0], 1)


def _log_transform(x, scale: float = LOG_SCALE):
    """MB-GAN's critic transform ``log(1 + 1000 x) / log(1001)``: 0 → 0, 1 → 1."""
    torch = _require_torch()
    return torch.log1p(scale * x) / math.log1p(scale)


def _moment_gap(fake, fake_mask, real, *, sample_weight: float = 1.0, scale: float = LOG_SCALE):
    """Squared gaps between a synthetic and a real minibatch (scalar tensor).

    Per taxon: the sorted values (squared 1-D Wasserstein distance), mean and SD of the log
    transform, the presence rate and the mean abundance. Per sample: the sorted values, mean and
    SD of the Shannon index and of the fraction of taxa present, times ``sample_weight``. Both
    batches have the same size.
    """
    log_f, log_r = _log_transform(fake, scale), _log_transform(real, scale)
    real_mask = (real > 0).to(real.dtype)
    # Sorting each column matches the whole per-taxon distribution (squared 1-D Wasserstein
    # distance between the minibatches), not only its mean and SD.
    sorted_gap = (log_f.sort(dim=0).values - log_r.sort(dim=0).values) ** 2
    per_taxon = (
        sorted_gap.mean(0)
        + (log_f.mean(0) - log_r.mean(0)) ** 2
        + (log_f.std(0) - log_r.std(0)) ** 2
        + (fake_mask.mean(0) - real_mask.mean(0)) ** 2
        + (fake.mean(0) - real.mean(0)) ** 2
    )
    per_sample = 0.0
    for stat_f, stat_r in (
        (_shannon(fake), _shannon(real)),
        (fake_mask.mean(1), real_mask.mean(1)),
    ):
        per_sample = (
            per_sample
            + (stat_f.mean() - stat_r.mean()) ** 2
            + (stat_f.std() - stat_r.std()) ** 2
            + ((stat_f.sort().values - stat_r.sort().values) ** 2).mean()
        )
    return per_taxon.sum() + sample_weight * per_sample


def _correlation_gap(fake, real, scale: float):
    """Mean squared gap between the taxon–taxon Pearson correlations of two minibatches on
    the critic's transform, over the pairs of taxa that vary in both, times the number of
    taxa (scalar tensor). Taxa constant in a minibatch (e.g. absent throughout) are left
    out: their correlation is undefined and dividing by their SD would explode."""
    torch = _require_torch()

    def standardised(x):
        logs = _log_transform(x, scale)
        centred = logs - logs.mean(dim=0, keepdim=True)
        var = centred.pow(2).mean(dim=0, keepdim=True)
        return centred / (var + 1e-8).sqrt(), var.detach().squeeze(0) > 1e-8

    z_f, var_f = standardised(fake)
    z_r, var_r = standardised(real)
    varies = (var_f & var_r).to(fake.dtype)
    pairs = torch.triu(varies[:, None] * varies[None, :], diagonal=1)
    if float(pairs.sum()) == 0:
        return fake.new_zeros(())
    gap = (z_f.T @ z_f - z_r.T @ z_r) / len(fake)
    return fake.shape[1] * (gap.pow(2) * pairs).sum() / pairs.sum()


def _shannon(x):
    """Shannon index per row, shape (batch,); x·log(max(x, 1e-12)) keeps gradients finite."""
    torch = _require_torch()
    return -(x * torch.log(x.clamp_min(1e-12))).sum(dim=1)


def _init_output_heads(gen_net, x_np: np.ndarray) -> None:
    """Start the generator at the data's marginals: presence-gate biases at logit(prevalence)
    and abundance biases at the mean log proportion of each taxon where present (weights keep
    their default initialisation). Training then spends its iterations on the joint structure
    instead of first finding each taxon's scale."""
    torch = _require_torch()
    present = x_np > 0
    prevalence = present.mean(axis=0).clip(0.02, 0.98)
    log_x = np.where(present, np.log(np.where(present, x_np, 1.0)), 0.0)
    mean_log = np.where(
        present.any(axis=0), log_x.sum(axis=0) / np.maximum(present.sum(axis=0), 1), np.log(1e-5)
    )
    with torch.no_grad():
        gen_net.presence.bias.copy_(torch.as_tensor(np.log(prevalence / (1 - prevalence))))
        gen_net.abundance.bias.copy_(torch.as_tensor(mean_log - mean_log.max()))


def _read_sampling(x, mask, depths, rng, *, straight_through: bool = True):
    """Sequence compositions: Poisson reads at the given depths, re-closed.

    Parameters
    ----------
    x, mask : torch.Tensor of shape (batch, n_taxa)
        Compositions and presence mask from the generator.
    depths : torch.Tensor of shape (batch,)
        Read depth of each row (drawn from the training depths by the caller).
    rng : torch.Generator

    Returns
    -------
    (x_reads, mask_reads) : torch.Tensor of shape (batch, n_taxa)
        Forward: read proportions (exact zeros where no read fell); backward: identity to
        ``x`` (straight-through), and the mask loses the taxa that drew no read.

    Notes
    -----
    Independent Poisson counts conditioned on their total are multinomial, so this matches
    multinomial read sampling up to the depth's own Poisson noise, and ``torch.poisson`` takes
    a generator (``torch.distributions.Multinomial`` needs one total for the whole batch).
    """
    torch = _require_torch()
    d = depths.to(x.device).unsqueeze(1)
    rate = (x.detach() * d).cpu()
    if not bool(torch.isfinite(rate).all()):
        raise DataError(
            "the generator produced non-finite values (training diverged, or corrupt weights)",
            field="gan",
        )
    reads = torch.poisson(rate, generator=rng).to(x.device)
    # A row that drew no read keeps one read on its most abundant taxon.
    empty = reads.sum(dim=1) == 0
    if empty.any():
        top = torch.nn.functional.one_hot(x[empty].argmax(dim=1), x.shape[1]).to(reads.dtype)
        reads[empty] = top
    if not straight_through:  # sampling: exact read proportions in float64
        reads = reads.double()
        return reads / reads.sum(dim=1, keepdim=True), mask * (reads > 0).to(mask.dtype)
    observed = reads / reads.sum(dim=1, keepdim=True)
    detected = (reads > 0).to(x.dtype)
    # Forward: mask × detected. Backward: identity to the gate, so that the gradient can also
    # open taxa that happened to draw no read (a product would block it exactly there).
    return x + (observed - x).detach(), mask - (mask * (1.0 - detected)).detach()


def _prefixed(state: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _as_compositions(X) -> tuple[np.ndarray, list[str]]:
    """Closed float64 rows and taxon names from a DataFrame or array of shape (n, taxa)."""
    if isinstance(X, pd.DataFrame):
        taxa = [str(c) for c in X.columns]
        arr = X.to_numpy(dtype=float)
    else:
        arr = np.asarray(X, dtype=float)
        if arr.ndim != 2:
            raise DataError(f"X must be 2-D (samples × taxa), got shape {arr.shape}", field="X")
        taxa = [f"taxon_{j}" for j in range(arr.shape[1])]
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise DataError(f"need at least 2 samples and 2 taxa, got shape {arr.shape}", field="X")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise DataError("X must be finite and non-negative", field="X")
    totals = arr.sum(axis=1, keepdims=True)
    if np.any(totals <= 0):
        raise DataError(f"{int((totals <= 0).sum())} samples sum to zero", field="X")
    return arr / totals, taxa
