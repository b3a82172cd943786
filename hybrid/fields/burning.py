"""Objects that ignite, burn, char and lose mass: the fire side of ``physics.flammable``.

Each flammable object carries a burn map: the nodes of its surface
(``hybrid.fields.burn_surface``), each standing for a patch of area ``a``. A node's
*air cell* is the first gas cell that is not solid along its outward normal (probed at
0.5, 1 and 1.5 cells out); a node with none (covered by another body, or outside the
gas domain) can neither ignite from the gas nor burn: no air reaches it.

Once per video frame, before the gas advances over [t0, t1] (``FieldSystem``):

1. **Ignition by heat.** A node whose air cell is hotter than ``ignition_temperature``
   (kelvin above ambient), or onto which the flames radiate more than ``critical_flux``
   (W/m^2, ``hybrid.fields.radiation``: the flux a fire engineer's piloted-ignition test
   names; it lets fire jump a gap the hot gas does not cross), adds the frame's length
   to its heating time, and loses it again while neither holds; when the heating time
   reaches ``ignition_time`` the node ignites, at the moment within the frame that the
   sum crossed it. The gas is read once per frame, so ignition lags by at most one frame.
2. **The scene's flame** (``flammable.ignite``) lights the nodes within its radius
   of its point (or the nearest node) at its time.
3. **Spread along the surface.** A node that ignites at time t sets every neighbour's
   ignition time to at most t + distance / ``spread_speed`` (``burn_surface`` edges);
   the frame's ignitions are taken in time order (Dijkstra's algorithm), so the front's
   arrival times do not depend on the frame rate.
4. **Burning.** A burning node with an air cell loses ``burn_rate`` x a kg per second
   of its share of the burnable mass, (1 - ``ash_fraction``) x mass x a / A, and goes
   out when that is gone. Its char level is the mass it has lost over that of a
   blackened surface layer, ``CHAR_LAYER`` kg per m^2 (or ``CHAR_SHARE`` of its fuel
   if that is less: paper), so a surface blackens within seconds of catching fire
   while the object burns on for as long as its fuel lasts.
5. **Fuel vapour.** The mass lost goes into the node's air cell as gas fuel, spread
   evenly over the frame (``GasSolver.set_fuel_sources``), in units whose burning
   (``fields.gas.combustion``, ``heat`` kelvin per unit) releases ``heat_release`` J
   per kg: a kg of vapour in a cell of volume V is heat_release / (air_density x
   AIR_HEAT_CAPACITY x V x heat) units. So the mass an object loses is exactly the
   vapour it gives off, and the heat the gas gains when it burns is exactly that mass
   times ``heat_release``. The cells a burning surface gives vapour to hold its flame:
   the vapour burns there whatever the temperature (the solver's combustion burns fuel
   elsewhere only above its ignition temperature); what escapes unburnt burns on where
   the gas is hot. Nothing else heats the gas.
6. **Mass.** The object's mass is its initial mass less what burnt; a dynamic body
   gets it (and its inertia scaled by the same factor) in pybullet before the frame's
   first step.

**Smothering.** A node whose air cell is at least ``WET_FRACTION`` full of the
liquid's particles (binned on the gas grid) is under the liquid: it neither ignites nor
burns, and a flame there goes out (the node may catch again once it is dry and hot).

**Collapse.** A consumed object with ``collapse`` >= 2 falls apart into that many char
fragments at the start of the next frame (``take_collapses``; the World breaks it with
the breakable machinery, no blow and no kick, the fragments sharing the mass it has
left): a ``breaks`` event in the metadata. The fragments are ash and char: they do not
burn. With ``collapse: 0`` it keeps its shape.

An object's state: ``intact`` until a node ignites, ``burning`` while one burns,
``charred`` when none burns any more, ``consumed`` (for good) once
``consumed_fraction`` of what could burn is gone: the burnable mass of the nodes that
have had air (a box standing on a table never burns its underside; it is consumed
when the rest is). Its ignition's *cause* is the
scene's flame (``ignite``), else the heat source nearest the first node to ignite:
another object's burning node or a hot gas emitter (``fields.gas.emitters[k]``),
else ``hot gas`` (none of either: air made hot some other way).

Plain NumPy: the gas solver is only read (temperature, solid cells) and given its
fuel sources.
"""

from __future__ import annotations

import heapq
from typing import Callable, Optional, Sequence

import numpy as np

from hybrid.fields import radiation
from hybrid.fields.burn_surface import BurnSurface, burn_surface
from hybrid.fields.frames import BURN_STATES, BurnFrame
from hybrid.transforms import quats_to_matrices

AIR_HEAT_CAPACITY = 1005.0  # J / (kg K), dry air at constant pressure near room temperature
CHAR_SHARE = 0.25  # a node is fully charred once this share of its fuel has burnt,
CHAR_LAYER = 0.05  # or once this many kg per m^2 of it have (a blackened surface layer, about 0.1 mm of wood)
PROBES = (0.5, 1.0, 1.5)  # cells out along the normal where a node looks for its air cell
WET_FRACTION = 0.5  # a gas cell at least this full of liquid particles is under the liquid

INTACT, BURNING, CHARRED, CONSUMED = (BURN_STATES.index(n) for n in ("intact", "burning", "charred", "consumed"))
SCENE_CAUSE = "ignite"
HEAT_CAUSE = "hot gas"


class _Burning:
    """One flammable object's burn map and its state."""

    def __init__(self, index: int, name: str, surface: BurnSurface, settings: dict, mass: float):
        self.index = index
        self.name = name
        self.surface = surface
        self.s = settings
        self.mass0 = float(mass)
        n = surface.count
        area = surface.area
        burnable = (1.0 - float(settings["ash_fraction"])) * self.mass0
        self.fuel0 = burnable * area / area.sum()
        self.fuel = self.fuel0.copy()
        self.ignited = np.full(n, np.inf)  # ignition time per node
        self.arrival = np.full(n, np.inf)  # earliest ignition time the front has scheduled
        self.heating = np.zeros(n)  # seconds above the ignition temperature (net)
        self.exposed = np.zeros(n, dtype=bool)  # whether the node has ever had an air cell
        # Neighbour lists (CSR) with the front's travel time along each edge.
        e, length = surface.edges, surface.length
        both = np.concatenate([e, e[:, ::-1]])
        lengths = np.concatenate([length, length])
        order = np.lexsort((both[:, 1], both[:, 0]))
        both, lengths = both[order], lengths[order]
        self.nbr_start = np.searchsorted(both[:, 0], np.arange(n + 1))
        self.nbr = both[:, 1]
        speed = float(settings["spread_speed"])
        self.nbr_time = lengths / speed if speed > 0 else np.full(len(lengths), np.inf)
        self.state = INTACT
        self.collapses = int(settings["collapse"]) >= 2
        self.collapsed = False
        self.ignition_time = np.nan
        self.consumed_time = np.nan
        self.cause = ""
        self.burning_area = 0.0
        ignite = settings["ignite"]
        self.ignite = ignite
        self.ignite_nodes = np.zeros(0, dtype=np.int64)
        if ignite is not None:
            d = np.linalg.norm(surface.position - np.asarray(ignite.point, dtype=np.float64), axis=1)
            near = np.flatnonzero(d <= ignite.radius)
            self.ignite_nodes = near if len(near) else np.array([int(np.argmin(d))])

    @property
    def burnt(self) -> float:
        return float(self.fuel0.sum() - self.fuel.sum())

    @property
    def mass(self) -> float:
        return self.mass0 - self.burnt

    def char(self) -> np.ndarray:
        full = np.minimum(CHAR_SHARE * self.fuel0, CHAR_LAYER * self.surface.area)
        return np.minimum(1.0, (self.fuel0 - self.fuel) / np.maximum(full, 1e-300)).astype(np.float32)

    def spread(self, t1: float, newly: list) -> None:
        """Ignite, in time order, every node whose scheduled time is before `t1`; relax neighbours."""
        pending = np.flatnonzero((self.arrival < t1) & ~np.isfinite(self.ignited))
        heap = [(float(self.arrival[i]), int(i)) for i in pending]
        heapq.heapify(heap)
        ignited, arrival = self.ignited, self.arrival
        start, nbr, travel = self.nbr_start, self.nbr, self.nbr_time
        while heap:
            t, i = heapq.heappop(heap)
            if np.isfinite(ignited[i]) or t > arrival[i]:
                continue
            ignited[i] = t
            newly.append((t, i))
            js = nbr[start[i]:start[i + 1]]
            ts = t + travel[start[i]:start[i + 1]]
            better = ts < arrival[js]
            js, ts = js[better], ts[better]
            arrival[js] = ts
            for j, tj in zip(js.tolist(), ts.tolist()):
                if tj < t1 and not np.isfinite(ignited[j]):
                    heapq.heappush(heap, (tj, j))


class Burner:
    """The flammable objects of a World (see the module docstring)."""

    def __init__(
        self,
        scene,
        gas,
        masses: Sequence[float],
        set_mass: Optional[Callable[[int, float], None]] = None,
    ):
        """`gas`: the scene's ``GasSolver``; `masses`: every scene object's mass (kg; static ones too,
        for the metadata); `set_mass(index, kg)` gives a body its new mass."""
        self.gas = gas
        self.dx = float(gas.dx)
        self.origin = np.asarray(gas.origin, dtype=np.float64)
        self.shape = np.asarray(gas.shape, dtype=np.int64)
        comb = gas.spec.combustion
        # Fuel units per kg of vapour in one cell, times heat_release: see the module docstring, step 5.
        self._units_per_joule = 1.0 / (gas.spec.air_density * AIR_HEAT_CAPACITY * self.dx**3 * comb.heat)
        self._set_mass = set_mass
        self.objects: list[_Burning] = []
        for i, obj in enumerate(scene.objects):
            spec = obj.physics.flammable
            if spec is None:
                continue
            settings = spec.resolved()
            surface = burn_surface(obj.shape, scene.seed, float(settings["spacing"]))
            self.objects.append(_Burning(i, obj.name, surface, settings, masses[i]))
        self.index = tuple(b.index for b in self.objects)
        self.names = tuple(b.name for b in self.objects)

    # ------------------------------------------------------------ one frame

    def wet_cells(self, particles: np.ndarray, particle_volume: float) -> np.ndarray:
        """(nx, ny, nz) bool on the gas grid: cells at least ``WET_FRACTION`` full of the liquid's
        particles (`particles` (N, 3) world positions, each `particle_volume` m^3)."""
        ijk = np.floor((np.asarray(particles, dtype=np.float64) - self.origin) / self.dx).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < self.shape), axis=1)
        count = np.bincount(np.ravel_multi_index(tuple(ijk[inside].T), tuple(self.shape)), minlength=int(np.prod(self.shape)))
        return (count * particle_volume >= WET_FRACTION * self.dx**3).reshape(tuple(self.shape))

    def update(
        self, t0: float, t1: float, position: np.ndarray, quaternion: np.ndarray, wet: Optional[np.ndarray] = None
    ) -> None:
        """Burn over [t0, t1] with the bodies at `position` / `quaternion` (shape frames, one row per
        roster entry) and the gas as it is now; set the gas's fuel sources for the interval. `wet`:
        cells under the liquid (``wet_cells``), where nothing burns."""
        dt = t1 - t0
        temperature = self.gas.temperature()
        solid = self.gas.solid()
        rate = np.zeros(self.gas.shape, dtype=np.float64)
        active = [b for b in self.objects if not b.collapsed]  # a collapsed object's char fragments do not burn
        world = []
        for b in active:
            rot = quats_to_matrices(np.asarray(quaternion[b.index], dtype=np.float64)[None])[0]
            pos = b.surface.position @ rot.T + np.asarray(position[b.index], dtype=np.float64)
            nrm = b.surface.normal @ rot.T
            world.append((pos, nrm, *self._air_cells(pos, nrm, solid)))
        if wet is not None:
            # Under the liquid a node has no air: it neither ignites nor burns, and a flame there goes out.
            for b, entry in zip(active, world):
                pos, nrm, cell, has_air = entry
                doused = has_air & wet[tuple(cell.T)]
                if doused.any():
                    b.ignited[doused] = np.inf
                    b.arrival[doused] = np.inf
                    b.heating[doused] = 0.0
                entry[3][:] = has_air & ~doused
        flux = self._radiant_flux(temperature, solid, active, world)
        newly_by_object = []
        for b, (pos, nrm, cell, has_air), q in zip(active, world, flux):
            newly: list = []
            # 1. heat: the gas next to the node, or the flames' radiant heat onto it
            hot = has_air & (
                (temperature[tuple(cell.T)] > float(b.s["ignition_temperature"])) | (q > float(b.s["critical_flux"]))
            )
            hot &= ~np.isfinite(b.ignited)
            heating = b.heating + np.where(hot, dt, -dt)
            heating = np.maximum(heating, 0.0)
            need = float(b.s["ignition_time"])
            lit = hot & (heating >= need) & ~np.isfinite(b.ignited)
            when = t1 - (heating[lit] - need)
            b.arrival[lit] = np.minimum(b.arrival[lit], np.maximum(when, t0))
            b.heating = heating
            # 2. the scene's flame
            if b.ignite is not None and t0 <= b.ignite.t < t1:
                nodes = b.ignite_nodes
                b.arrival[nodes] = np.minimum(b.arrival[nodes], b.ignite.t)
                if not b.cause:
                    b.cause = SCENE_CAUSE
            # 3. the front
            b.spread(t1, newly)
            newly_by_object.append(newly)
        # Causes, with every object's burning nodes as they were at the start of the frame.
        for b, newly, (pos, *_rest) in zip(active, newly_by_object, world):
            if newly and not np.isfinite(b.ignition_time):
                first_t, first = min(newly)
                b.ignition_time = first_t
                if not b.cause:
                    b.cause = self._cause(b, pos[first], active, world)
        # 4, 5. burning and vapour
        for b, (pos, nrm, cell, has_air) in zip(active, world):
            b.exposed |= has_air
            burning = np.isfinite(b.ignited) & (b.fuel > 0) & has_air
            length = np.clip(t1 - np.maximum(b.ignited, t0), 0.0, dt)
            lost = np.where(burning, np.minimum(b.fuel, float(b.s["burn_rate"]) * b.surface.area * length), 0.0)
            b.fuel = b.fuel - lost
            if lost.any():
                units = lost * float(b.s["heat_release"]) * self._units_per_joule / dt
                flat = np.ravel_multi_index(tuple(cell[burning].T), self.gas.shape)
                np.add.at(rate.reshape(-1), flat, units[burning])
            still = burning & (b.fuel > 0)
            b.burning_area = float(b.surface.area[still].sum())
            self._set_state(b, t1, bool(still.any()))
            if self._set_mass is not None and lost.any():
                self._set_mass(b.index, b.mass)
        self.gas.set_fuel_sources(rate if rate.any() else None)

    def _radiant_flux(self, temperature: np.ndarray, solid: np.ndarray, active: list, world: list) -> list:
        """Per active object, the flames' radiant flux (W/m^2) onto each node that has air and has
        not ignited (0 elsewhere): ``hybrid.fields.radiation``, seen from the node's air cell."""
        out = [np.zeros(b.surface.count) for b in active]
        combustion = self.gas.spec.combustion
        kappa = float(combustion.radiation) if combustion is not None else 0.0
        if kappa <= 0.0:
            return out
        centres, powers = radiation.emitters(
            temperature, self.origin, self.dx, float(self.gas.spec.ambient_temperature), kappa
        )
        if len(powers) == 0:
            return out
        picks = [entry[3] & ~np.isfinite(b.ignited) for b, entry in zip(active, world)]
        if not any(p.any() for p in picks):
            return out
        pos = np.concatenate([entry[0][p] for entry, p in zip(world, picks)])
        nrm = np.concatenate([entry[1][p] for entry, p in zip(world, picks)])
        eye = self.origin + (np.concatenate([entry[2][p] for entry, p in zip(world, picks)]) + 0.5) * self.dx
        q = radiation.incident_flux(centres, powers, pos, nrm, solid, self.origin, self.dx, eyes=eye)
        start = 0
        for k, p in enumerate(picks):
            count = int(p.sum())
            out[k][p] = q[start : start + count]
            start += count
        return out

    def _air_cells(self, pos: np.ndarray, nrm: np.ndarray, solid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per node its air cell (N, 3) and whether it has one (N,) (the module docstring)."""
        n = len(pos)
        cell = np.zeros((n, 3), dtype=np.int64)
        found = np.zeros(n, dtype=bool)
        for k in PROBES:
            ijk = np.floor((pos + nrm * (k * self.dx) - self.origin) / self.dx).astype(np.int64)
            inside = np.all((ijk >= 0) & (ijk < self.shape), axis=1)
            ok = inside & ~found
            ok[ok] = ~solid[tuple(ijk[ok].T)]
            cell[ok] = ijk[ok]
            found |= ok
        return cell, found

    def _cause(self, b: _Burning, point: np.ndarray, active: list, world: list) -> str:
        """The nearest heat source to `point`: another object's burning node, or a gas emitter that heats or adds fuel."""
        best, name = np.inf, HEAT_CAUSE
        for other, (pos, *_rest) in zip(active, world):
            if other is b:
                continue
            burning = np.isfinite(other.ignited) & (other.fuel > 0)
            if not burning.any():
                continue
            d = float(np.linalg.norm(pos[burning] - point, axis=1).min())
            if d < best:
                best, name = d, other.name
        for k, em in enumerate(self.gas.spec.emitters):
            if em.temperature <= 0 and em.fuel <= 0:
                continue
            reach = em.radius if em.shape == "sphere" else 0.5 * float(np.linalg.norm(em.size))
            d = max(0.0, float(np.linalg.norm(np.asarray(em.center) - point)) - reach)
            if d < best:
                best, name = d, f"fields.gas.emitters[{k}]"
        return name

    def take_collapses(self) -> list[tuple[int, float]]:
        """(roster index, mass left in kg) of the objects consumed since the last call that collapse into
        char fragments (``flammable.collapse``); from then on they burn no more."""
        out = [(b.index, b.mass) for b in self.objects if b.state == CONSUMED and b.collapses and not b.collapsed]
        for b in self.objects:
            if b.state == CONSUMED and b.collapses:
                b.collapsed = True
                b.burning_area = 0.0  # it is char fragments now: nothing of it burns
        return out

    def _set_state(self, b: _Burning, t1: float, burning: bool) -> None:
        # What could burn: the fuel of the nodes that have had air (not those pressed against the
        # table it stands on, or under another object, all along).
        burnable = b.fuel0[b.exposed].sum()
        if b.state != CONSUMED and burnable > 0 and b.burnt >= float(b.s["consumed_fraction"]) * burnable * (1 - 1e-12):
            b.state = CONSUMED
            b.consumed_time = t1
        elif b.state != CONSUMED:
            b.state = BURNING if burning else (CHARRED if np.isfinite(b.ignition_time) else INTACT)

    # ------------------------------------------------------------ reading

    def frame(self) -> BurnFrame:
        objs = self.objects
        return BurnFrame(
            index=self.index,
            names=self.names,
            state=np.array([b.state for b in objs], dtype=np.uint8),
            mass_kg=np.array([b.mass for b in objs]),
            burnt_kg=np.array([b.burnt for b in objs]),
            heat_J=np.array([b.burnt * float(b.s["heat_release"]) for b in objs]),
            burning_area_m2=np.array([b.burning_area for b in objs]),
            ignition_time_s=np.array([b.ignition_time for b in objs]),
            consumed_time_s=np.array([b.consumed_time for b in objs]),
            cause=tuple(b.cause for b in objs),
            char=tuple(b.char() for b in objs),
        )
