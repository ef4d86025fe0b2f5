"""The member axis: M runs of one loss (its seeds, or settings) trained by ONE step function.

A family writes its update once, over a leading member axis: every tensor of
the step is ``(M, N, ...)``, every loss ``(M,)``. A solo run is M = 1; the
seeds of a comparison batched in one worker are M = K. :class:`Members` is
what the step runs on:

- **networks** with the member axis: where the M solo networks can stack
  (MLPs of linear, layer-norm and elementwise layers) one ensemble module of
  stacked weights (:mod:`losslab.models.ensemble`, one ``baddbmm`` per layer),
  member k initialised as the solo run of seed k; where they cannot
  (convolutions, BatchNorm) a
  :class:`~losslab.models.ensemble.MemberLoop` that calls each member's own
  network on its slice. A solo run (M = 1) always takes the loop, i.e. its
  own networks, so its arithmetic is the solo arithmetic;
- **optimizers**: one optimizer over the stacked tensors (Adam and RMSprop are
  elementwise, so it equals M optimizers whose step counts stay equal), or the
  members' own optimizers in a loop (then their settings may differ: a
  learning-rate sweep is M members in loop mode);
- **random streams**: member k draws its batches, latent codes, timesteps and
  penalty noise from its own generator in the solo run's order
  (:meth:`Members.draw`);
- **divergence**: the step collects its losses ``(M,)`` and calls
  :meth:`Members.check` once per update (one host sync); a member whose loss
  is NaN/inf is retired at that update (the update and critic count its solo
  run reports), its slot zeroed (stacked) or left alone (loop: its tensors
  are its own) and masked out of the summed loss; the others go on;
- **per-member hyperparameters**: :meth:`Members.hp` returns the value when
  the members agree, else an ``(M,)`` tensor the step broadcasts (penalty
  weights, margins, clipping bounds, gradient-clip norms, loss hyperparameters
  passed to the pure losses through :func:`per_member`). What shapes the
  program (``n_critic``, the optimizer's kind, the schedule) must agree
  (:meth:`Members.shared`).

Losses are *summed* over members before ``backward``, so member k's gradient
is its own. The solo states stay the persistent view of each member (their
update counts are kept there by the step); :meth:`Members.store` copies a
stacked slot's weights and optimizer state back into its solo state, through
which checkpoints, samples, snapshots and results are written by the solo code.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from losslab.models.ensemble import MemberLoop, NotBatchable, ensemble_of, slot_pairs, slot_view
from losslab.train.common import Diverged

__all__ = ["Members", "loop_step", "per_member"]

Parts = Callable[[Any], tuple[dict[str, nn.Module], dict[str, torch.optim.Optimizer]]]


def _same(values: Sequence[Any]) -> bool:
    v0 = values[0]
    return all(v == v0 for v in values[1:])


def _opt_key(opt: torch.optim.Optimizer) -> tuple:
    d = opt.defaults
    return (type(opt), tuple(sorted((k, repr(v)) for k, v in d.items())))


class Members:
    """M solo states of one (family, loss) as one set of networks with a leading member axis.

    Args:
        states: M >= 1 states of the family's ``init_state`` (one loss), all at
            the same ``g_updates``; they stay the members' solo views (their
            ``rng`` is drawn from directly, their update counts are kept by the step).
        parts: ``parts(state) -> (modules, optimizers)``, the family's named
            networks and optimizers (the names of its checkpoint); an
            optimizer belongs to the module whose parameters it holds.
        stack: stack the networks that can stack (default: when M > 1); False
            runs every network member by member (the solo path).

    Attributes:
        m: the number of members. active: (M,) bools, False once retired.
        mask: (M,) float tensor, 1 for active members. modules: name -> network
        with the member axis. stacked: name -> bool.

    Raises:
        ValueError: the states are at different ``g_updates``.
    """

    def __init__(self, states: Sequence[Any], parts: Parts | None = None, *, stack: bool | None = None) -> None:
        if len({s.g_updates for s in states}) != 1:
            raise ValueError("the members must be at the same generator update")
        self.states = list(states)
        self.m = len(self.states)
        self.device = torch.device(getattr(self.states[0], "device", "cpu"))
        self.active = [True] * self.m
        self.mask = torch.ones(self.m, device=self.device)
        self.parts = parts
        self.modules: dict[str, nn.Module] = {}
        self.stacked: dict[str, bool] = {}
        self.opts: dict[str, tuple[str, list[torch.optim.Optimizer]]] = {}
        if parts is None:
            return
        stack = self.m > 1 if stack is None else stack
        solo = [parts(s) for s in self.states]
        owner = {}
        for oname, opt in solo[0][1].items():
            first = opt.param_groups[0]["params"][0]
            owner[oname] = next(n for n, mod in solo[0][0].items() if any(p is first for p in mod.parameters()))
        for name in solo[0][0]:
            mods = [s[0][name] for s in solo]
            onames = [o for o, n in owner.items() if n == name]
            can = stack and all(_same([_opt_key(s[1][o]) for s in solo]) for o in onames)
            module: nn.Module | None = None
            if can:
                try:
                    module = ensemble_of(mods)
                except NotBatchable:
                    module = None
            self.stacked[name] = module is not None
            if module is None:
                module = MemberLoop(mods)
            elif not any(p.requires_grad for p in mods[0].parameters()):
                module.requires_grad_(False)  # e.g. an EMA copy
            self.modules[name] = module
            for o in onames:
                solos = [s[1][o] for s in solo]
                if self.stacked[name]:
                    so = solos[0]
                    self.opts[o] = (name, [type(so)(module.parameters(), **so.defaults)])
                else:
                    self.opts[o] = (name, solos)
        for i in range(self.m):
            self.load(i)

    # -- what the step reads

    @property
    def rngs(self) -> list[torch.Generator]:
        """The members' training streams, in member order."""
        return [s.rng for s in self.states]

    def draw(self, fn: Callable[[torch.Generator], Tensor]) -> Tensor:
        """``fn(rng_k)`` for every member k, stacked: ``(M, ...)`` on the members' device."""
        if self.m == 1:
            return fn(self.states[0].rng).unsqueeze(0).to(self.device)
        return torch.stack([fn(r) for r in self.rngs]).to(self.device)

    def hp(self, key: str) -> Any:
        """Hyperparameter ``key``: the value when the members agree, else an ``(M,)`` float32 tensor.

        Raises:
            NotBatchable: the members disagree on a non-numeric value.
        """
        vals = [s.hp[key] for s in self.states]
        if _same(vals):
            return vals[0]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            return torch.tensor([float(v) for v in vals], device=self.device)
        raise NotBatchable(f"members differ in {key} ({vals}); it shapes the step")

    def shared(self, key: str) -> Any:
        """Hyperparameter ``key``, which shapes the program (e.g. ``n_critic``): the members must agree.

        Raises:
            NotBatchable: they do not.
        """
        vals = [s.hp[key] for s in self.states]
        if not _same(vals):
            raise NotBatchable(f"members differ in {key} ({vals}); it shapes the step")
        return vals[0]

    def column(self, value: Any, like: Tensor) -> Any:
        """``value`` (a number, or an ``(M,)`` tensor from :meth:`hp`) shaped to broadcast over ``like`` (M, ...)."""
        if torch.is_tensor(value):
            return value.reshape(-1, *([1] * (like.dim() - 1))).to(like.dtype)
        return value

    # -- optimizers and gradients

    def zero_grad(self, opt: str) -> None:
        for o in self.opts[opt][1]:
            o.zero_grad(set_to_none=True)

    def step(self, opt: str) -> None:
        """The optimizer step of ``opt`` (loop mode: active members only)."""
        name, opts = self.opts[opt]
        if self.stacked[name]:
            opts[0].step()  # a retired slot has zero gradients and state: it stays zero
            return
        for k, o in enumerate(opts):
            if self.active[k]:
                o.step()

    def _member_params(self, name: str) -> list[list[Tensor]]:
        """Loop mode: each member's parameter list."""
        return [list(m.parameters()) for m in self.modules[name].members]

    def flat(self, name: str, *, grads: bool) -> list[Tensor]:
        """Every parameter (or its gradient) of ``name`` as ``(M, numel)``; missing gradients are zeros."""
        mod = self.modules[name]
        if self.stacked[name]:
            ps = list(mod.parameters())
            if grads:
                return [p.grad.detach().reshape(self.m, -1) for p in ps if p.grad is not None]
            return [p.detach().reshape(self.m, -1) for p in ps]
        per = self._member_params(name)
        out = []
        for j in range(len(per[0])):
            ts = [(ps[j].grad if grads else ps[j]) for ps in per]
            if grads and all(t is None for t in ts):
                continue
            out.append(torch.stack([(torch.zeros_like(ps[j]) if t is None else t.detach()).reshape(-1)
                                    for t, ps in zip(ts, per)]))
        return out

    def grad_stats(self, name: str) -> tuple[Tensor, Tensor]:
        """Per-member :func:`~losslab.train.common.grad_stats` of ``name``: ``(M,)`` global L2 norms, ``(M,)`` means."""
        gs = self.flat(name, grads=True)
        if not gs:
            z = torch.zeros(self.m, device=self.device)
            return z, z
        sq = sum(g.pow(2).sum(dim=1) for g in gs)
        total = sum(g.sum(dim=1) for g in gs)
        return sq.sqrt(), total / sum(g.shape[1] for g in gs)

    @torch.no_grad()
    def clip_grad_norm_(self, name: str, max_norm: Any) -> None:
        """Per-member global-norm clipping (``torch.nn.utils.clip_grad_norm_``'s rule, member by member).

        ``max_norm``: a number or an ``(M,)`` tensor.
        """
        if not self.stacked[name]:
            for k, ps in enumerate(self._member_params(name)):
                if self.active[k]:
                    nn.utils.clip_grad_norm_(ps, float(max_norm[k]) if torch.is_tensor(max_norm) else max_norm)
            return
        grads = [p.grad for p in self.modules[name].parameters() if p.grad is not None]
        norms = sum(g.detach().reshape(self.m, -1).pow(2).sum(dim=1) for g in grads).sqrt()  # (M,)
        coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.reshape(self.m, *([1] * (g.dim() - 1))))

    @torch.no_grad()
    def clamp_(self, name: str, c: Any) -> None:
        """Clamp every parameter of ``name`` to ``[-c, c]`` (WGAN's weight clipping); ``c`` number or ``(M,)``."""
        if not self.stacked[name]:
            for k, ps in enumerate(self._member_params(name)):
                ck = float(c[k]) if torch.is_tensor(c) else c
                for p in ps:
                    p.clamp_(-ck, ck)
            return
        for p in self.modules[name].parameters():
            cc = self.column(c, p)
            p.clamp_(-cc, cc)

    @torch.no_grad()
    def lerp_(self, dst: str, src: str, weight: float) -> None:
        """``dst <- dst + weight (src - dst)`` for every parameter (an EMA), buffers copied."""
        a, b = self.modules[dst], self.modules[src]
        if not self.stacked[dst]:  # loop mode: active members only (a retired member's networks are left as they are)
            for k, (ak, bk) in enumerate(zip(a.members, b.members)):
                if self.active[k]:
                    for pe, p in zip(ak.parameters(), bk.parameters()):
                        pe.lerp_(p, weight)
                    for be, bb in zip(ak.buffers(), bk.buffers()):
                        be.copy_(bb)
            return
        for pe, p in zip(a.parameters(), b.parameters()):
            pe.lerp_(p, weight)
        for be, bb in zip(a.buffers(), b.buffers()):
            be.copy_(bb)

    # -- divergence

    def check(self, totals: Sequence[Tensor]) -> dict[int, int]:
        """Members whose losses of this update hold a NaN/inf (one host sync); they are retired.

        Args:
            totals: the update's losses in order, each ``(M,)``.

        Returns:
            ``{member: index in totals of its first non-finite loss}``.
        """
        finite = torch.isfinite(torch.stack([t.detach().reshape(self.m) for t in totals]))  # (n_losses, M)
        if bool(finite.all()):  # the common case: one reduction, one sync
            return {}
        bad = ~finite & self.mask.bool()[None]
        if not bool(bad.any()):
            return {}
        out = {}
        for i in bad.any(dim=0).nonzero().flatten().tolist():
            out[i] = int(bad[:, i].nonzero()[0, 0])
            self.retire(i)
        return out

    @torch.no_grad()
    def retire(self, i: int) -> None:
        """Mask member i out. Stacked: zero its slot's weights, gradients and optimizer state (no NaN is carried
        on); in loop mode its networks are its own and are left as they are (its optimizer no longer steps)."""
        self.active[i] = False
        self.mask[i] = 0.0
        for name, mod in self.modules.items():
            if not self.stacked[name]:
                continue
            for p in mod.parameters():
                p[i].zero_()
                if p.grad is not None:
                    p.grad[i].zero_()
        for name, opts in self.opts.values():
            if self.stacked[name]:
                for st in opts[0].state.values():
                    for v in st.values():
                        if torch.is_tensor(v) and v.dim() > 0:
                            v[i].zero_()

    # -- slots <-> solo states (stacked networks only; loop members are the solo networks)

    @torch.no_grad()
    def load(self, i: int) -> None:
        """Copy member i's solo weights and optimizer state into its slots."""
        if self.parts is None:  # the members step their own states
            return
        mods, opts = self.parts(self.states[i])
        for name, ens in self.modules.items():
            if self.stacked[name]:
                for p, _, view in slot_pairs(ens, mods[name], i):
                    view.copy_(p)
        for oname, (name, eo) in self.opts.items():
            if self.stacked[name]:
                _opt_to_slot(eo[0], opts[oname], self.modules[name], mods[name], i)

    @torch.no_grad()
    def store(self, i: int) -> None:
        """Copy member i's slots (weights, optimizer state) into its solo state."""
        if self.parts is None:
            return
        mods, opts = self.parts(self.states[i])
        for name, ens in self.modules.items():
            if self.stacked[name]:
                for p, _, view in slot_pairs(ens, mods[name], i):
                    p.copy_(view)
        for oname, (name, eo) in self.opts.items():
            if self.stacked[name]:
                _slot_to_opt(eo[0], opts[oname], self.modules[name], mods[name], i)


def _opt_to_slot(eo: torch.optim.Optimizer, so: torch.optim.Optimizer, ens: nn.Module, solo: nn.Module,
                 k: int) -> None:
    for p, e, _ in slot_pairs(ens, solo, k):
        st = so.state.get(p)
        if not st:
            continue
        est = eo.state[e]
        for key, v in st.items():
            if torch.is_tensor(v) and v.dim() > 0 and v.shape == p.shape:
                if key not in est:
                    est[key] = torch.zeros_like(e)
                slot_view(est[key], k, p.shape).copy_(v)
            else:  # Adam's / RMSprop's step count: shared by all members (they step together)
                est[key] = v.clone() if torch.is_tensor(v) else v


def _slot_to_opt(eo: torch.optim.Optimizer, so: torch.optim.Optimizer, ens: nn.Module, solo: nn.Module,
                 k: int) -> None:
    for p, e, _ in slot_pairs(ens, solo, k):
        est = eo.state.get(e)
        if not est:
            continue
        so.state[p] = {key: (slot_view(v, k, p.shape).clone() if torch.is_tensor(v) and v.shape == e.shape
                             else (v.clone() if torch.is_tensor(v) else v)) for key, v in est.items()}


def per_member(fn: Callable[..., Tensor], m: int, tensors: dict[str, Tensor], params: dict[str, Any]) -> Tensor:
    """A pure per-run loss over the member axis: ``fn(**{k: v[i]}, **params_i)`` for each member i, ``(M,)``.

    Args:
        fn: a keyword-only loss returning a scalar (e.g. ``GANLoss.d_loss``).
        m: the number of members.
        tensors: ``(M, N, ...)`` inputs, sliced per member.
        params: hyperparameters; an ``(M,)`` tensor (:meth:`Members.hp`) is sliced per member, anything
            else is passed as is.

    One member calls ``fn`` directly (the solo arithmetic); more go through ``torch.func.vmap``.
    """
    if m == 1:
        kw = {k: (v[0] if torch.is_tensor(v) and v.dim() == 1 and len(v) == 1 else v) for k, v in params.items()}
        return fn(**{k: v[0] for k, v in tensors.items()}, **kw).reshape(1)
    batched = {**tensors, **{k: v for k, v in params.items() if torch.is_tensor(v)}}
    fixed = tuple((k, v) for k, v in params.items() if not torch.is_tensor(v))
    keys = tuple(batched)
    try:
        mapped = _vmapped(fn, keys, fixed)
    except TypeError:  # an unhashable hyperparameter: no cache
        mapped = _vmapped.__wrapped__(fn, keys, fixed)
    return mapped(*[batched[k] for k in keys])


@functools.lru_cache(maxsize=256)
def _vmapped(fn: Callable[..., Tensor], keys: tuple[str, ...], fixed: tuple[tuple[str, Any], ...]):
    """``fn`` over a leading member axis of the arguments ``keys`` (positional), ``fixed`` bound by name."""
    kw = dict(fixed)
    return torch.func.vmap(lambda *a: fn(**dict(zip(keys, a)), **kw))


def loop_step(step: Callable[..., dict[str, float]]):
    """The member step of a family whose update runs member by member through its solo ``step``
    (images' encoders, energy models): the same function, member after member, each from its own stream.

    Returns:
        ``step_members(members, data, batch_size, *, record) -> (logs, diverged)`` with
        ``logs[k]`` member k's diagnostics and ``diverged`` the members that diverged in this update.
    """

    def step_members(ms: Members, data, batch_size: int, *, record: bool = False
                     ) -> tuple[list[dict[str, float]], dict[int, Diverged]]:
        logs: list[dict[str, float]] = [{} for _ in range(ms.m)]
        diverged: dict[int, Diverged] = {}
        for k, st in enumerate(ms.states):
            if not ms.active[k]:
                continue
            try:
                logs[k] = step(st, data, batch_size, record=record)
            except Diverged as e:
                diverged[k] = e
                ms.retire(k)
        return logs, diverged

    return step_members
