"""The `fields:` section of a scene: smoke and fire on a grid, liquid as particles.

Pure data (no Taichi here): ``hybrid.fields`` builds solvers from these models.

Units: metres, seconds, kilograms; gas temperatures are kelvin *above* the ambient
temperature (0 is ambient air). Smoke ``density`` is a dimensionless soot
concentration (0 clear, about 1 thick smoke); it is what the renderer turns into
extinction and what the ``gas_density`` buffer integrates.

Grids: a solver's domain is a world-space box; ``resolution`` is the number of cells
along the box's longest side, the other sides get as many cells of the same size as
fit (at least 4). Every rigid body in the scene is a moving solid boundary of both
solvers wherever it overlaps their domains.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Optional, Union

from pydantic import Field, model_validator

from hybrid.spec.types import AxisBox, Color, Float, Int, NonNegative, Positive, Spec, SpecValueError, Unit, Vec3

Arch = Literal["cpu", "cuda", "vulkan", "auto"]


class Domain(AxisBox):
    """An axis-aligned box in world coordinates, metres."""

    @model_validator(mode="after")
    def _ordered(self) -> "Domain":
        self._check_axes(
            lambda lo, hi: not hi > lo,
            lambda axis, lo, hi: SpecValueError(
                f"domain.max must exceed domain.min on every axis; on {'xyz'[axis]} max {hi} <= min {lo}", at=("max",)
            ),
        )
        return self

    @property
    def size(self) -> tuple[float, float, float]:
        return tuple(hi - lo for lo, hi in zip(self.min, self.max))  # type: ignore[return-value]


def grid_shape(domain: Domain, resolution: int) -> tuple[tuple[int, int, int], float]:
    """Cells per axis and the cell size (m) for `resolution` cells along the longest side.

    The other sides get round(size / cell) cells (at least 4); the grid is anchored at
    ``domain.min`` and may end up to half a cell short of or beyond ``domain.max``.
    """
    size = domain.size
    cell = max(size) / resolution
    shape = tuple(max(4, int(round(s / cell))) for s in size)
    return shape, cell  # type: ignore[return-value]


# ---------------------------------------------------------------- gas (smoke and fire)


class Inflow(Spec):
    """A domain face that blows air in at a fixed velocity (world axes, m/s)."""

    type: Literal["inflow"]
    velocity: Vec3
    density: NonNegative = Field(0.0, description="smoke concentration carried in")
    temperature: Float = Field(0.0, description="kelvin above ambient carried in")


class MovingWall(Spec):
    """A solid domain face that slides in its own plane (a conveyor belt, the lid of a
    shear cell): no flow through it, and the air touching it moves with it (no slip at
    the face itself). ``velocity`` (world axes, m/s) is tangential: its component along
    the face's normal must be 0."""

    type: Literal["moving_wall"]
    velocity: Vec3


FaceKind = Literal["wall", "free_slip", "no_slip", "open", "pass_through"]
Face = Union[FaceKind, Inflow, MovingWall]

FACE_NAMES = ("x_min", "x_max", "y_min", "y_max", "z_min", "z_max")


class Boundaries(Spec):
    """What each face of the gas domain is.

    ``wall`` is ``free_slip`` (no flow through, tangential flow free); ``no_slip``
    also stops tangential flow; ``open`` opens onto still ambient air: gas leaves at
    ambient pressure (smoke leaves freely) and air drawn in comes from rest (the
    ambient total pressure, no swirl, no smoke or heat); ``pass_through`` is a cut
    through a flow that goes on beyond the domain (a channel): pressure 0 outside and
    air coming in brings its momentum; an inflow face blows air in.
    """

    x_min: Face = "wall"
    x_max: Face = "wall"
    y_min: Face = "wall"
    y_max: Face = "wall"
    z_min: Face = "wall"
    z_max: Face = "open"

    def face(self, name: str) -> Face:
        return getattr(self, name)

    @model_validator(mode="after")
    def _tangential(self) -> "Boundaries":
        for axis, name in enumerate(FACE_NAMES):
            face = self.face(name)
            if isinstance(face, MovingWall) and face.velocity[axis // 2] != 0.0:
                raise SpecValueError(
                    f"a moving wall slides in its own plane, but this velocity has {'xyz'[axis // 2]} component "
                    f"{face.velocity[axis // 2]:g} m/s across the {name} face; set it to 0 (to blow air in, use "
                    "{type: inflow, ...})",
                    at=(name, "velocity"),
                )
        return self


class Emitter(Spec):
    """A region that adds smoke, heat, fuel and velocity while it is active.

    Inside the region, every second: ``density`` concentration and ``fuel`` are added
    (units per second), the temperature is pulled toward ``temperature`` (kelvin above
    ambient) at rate ``heating`` (1/s), and the velocity is set to ``velocity``.
    """

    shape: Literal["sphere", "box"] = "sphere"
    center: Vec3
    radius: Positive = Field(0.1, description="sphere radius in metres")
    size: Optional[tuple[Positive, Positive, Positive]] = Field(None, description="box full extents in metres")
    density: NonNegative = Field(1.0, description="smoke concentration added per second")
    temperature: Float = Field(300.0, description="kelvin above ambient the region is held near")
    heating: NonNegative = Field(20.0, description="1/s: how fast the region's temperature approaches `temperature`")
    fuel: NonNegative = Field(0.0, description="fuel added per second (burns above combustion.ignition_temperature)")
    velocity: Vec3 = (0.0, 0.0, 0.0)
    start: NonNegative = Field(0.0, description="simulated seconds when emission starts")
    stop: Optional[Positive] = Field(None, description="simulated seconds when it stops (default: never)")

    @model_validator(mode="after")
    def _shape(self) -> "Emitter":
        if self.shape == "box" and self.size is None:
            raise SpecValueError("a box emitter needs `size: [sx, sy, sz]` (full extents in metres)", at=("size",))
        if self.shape == "sphere" and self.size is not None:
            raise SpecValueError("`size` is for box emitters; a sphere emitter takes `radius`", at=("size",))
        if self.stop is not None and self.stop <= self.start:
            raise SpecValueError(f"emitter stop ({self.stop}) must come after start ({self.start})", at=("stop",))
        return self


class Combustion(Spec):
    """Fuel burns where the gas is hotter than ``ignition_temperature``.

    Per second a fraction ``burn_rate`` of the fuel there burns; each unit burnt
    raises the temperature by ``heat`` kelvin and leaves ``smoke`` units of smoke. A cell
    burns no more fuel once it is ``max_temperature`` above ambient (near the
    temperature of a luminous flame).
    Burning cells glow in the beauty pass (``flame`` in the gas frame).
    """

    ignition_temperature: NonNegative = Field(150.0, description="kelvin above ambient")
    burn_rate: Positive = Field(8.0, description="1/s")
    heat: NonNegative = Field(1500.0, description="kelvin per unit of fuel burnt")
    smoke: NonNegative = Field(0.3, description="smoke concentration per unit of fuel burnt")
    max_temperature: Positive = Field(
        1700.0,
        description="kelvin above ambient: no cell burns hotter (the air it holds has only so much oxygen); "
        "the fuel left over burns further on, so a richer fire grows taller, not hotter",
    )
    radiation: NonNegative = Field(
        1.0,
        description="1/m: the flames' absorption coefficient (wood and hydrocarbon flames about 0.5 to 1.5), which "
        "sets the radiant heat they send onto flammable objects (hybrid.fields.radiation); 0: none",
    )


class Buoyancy(Spec):
    """Boussinesq buoyancy, along minus gravity: a = |g| (thermal * dT / T_ambient - smoke_weight * density)."""

    thermal: NonNegative = Field(1.0, description="multiplies the ideal-gas expansion 1 / T_ambient")
    smoke_weight: NonNegative = Field(0.05, description="downward pull per unit of smoke concentration, in g")


class PressureSolver(Spec):
    method: Literal["mgpcg", "cg"] = Field(
        "mgpcg", description="multigrid-preconditioned (default) or Jacobi-preconditioned conjugate gradients"
    )
    tolerance: Positive = Field(1e-5, description="stop when the residual's max norm falls below this x the initial one")
    max_iterations: Annotated[Int, Field(ge=1, le=10000)] = 200


class GasLook(Spec):
    """How smoke and fire look in the beauty pass (ray marched with self-shadowing)."""

    color: Color = Field((0.6, 0.6, 0.62), description="smoke albedo")
    extinction: Positive = Field(30.0, description="1/m per unit of smoke concentration")
    flame_intensity: NonNegative = Field(1.0, description="multiplies the blackbody glow of burning gas")
    steps_per_cell: Annotated[Float, Field(gt=0, le=4)] = Field(1.0, description="ray-march samples per cell crossed")
    heat_haze: bool = Field(
        True, description="hot air bends the view through it (hybrid.render.fields.haze); the heat_haze buffer holds the shift"
    )
    fire_lights: Annotated[Int, Field(ge=0, le=4)] = Field(
        1,
        description="with combustion: lights the rasteriser makes of the flames each frame (shadowed spot "
        "lights looking down, hybrid.render.fields.fire_lights; they count as spot lights); 0 turns them off",
    )


class GasSpec(Spec):
    domain: Domain
    resolution: Annotated[Int, Field(ge=4, le=512)] = Field(48, description="cells along the longest side")
    boundaries: Boundaries = Boundaries()
    ambient_temperature: Positive = Field(293.15, description="kelvin")
    air_density: Positive = Field(1.2, description="kg/m^3, for the forces on bodies")
    buoyancy: Buoyancy = Buoyancy()
    vorticity: NonNegative = Field(0.4, description="vorticity confinement strength (0 turns it off)")
    viscosity: NonNegative = Field(0.0, description="kinematic viscosity, m^2/s (air is 1.5e-5; 0 turns it off)")
    cooling: NonNegative = Field(0.8, description="1/s: temperature decays toward ambient at this rate")
    dissipation: NonNegative = Field(0.0, description="1/s: smoke concentration decays at this rate")
    advection: Literal["maccormack", "semi_lagrangian"] = "maccormack"
    pressure: PressureSolver = PressureSolver()
    cfl: Annotated[Float, Field(gt=0, le=5)] = Field(1.0, description="cells a gas parcel may cross per substep")
    max_substeps: Annotated[Int, Field(ge=1, le=1000)] = Field(
        16, description="most gas substeps per video frame; more needed is an error"
    )
    emitters: tuple[Emitter, ...] = Field(default_factory=tuple)
    combustion: Optional[Combustion] = None
    look: GasLook = GasLook()

    @property
    def prescribed_speed(self) -> float:
        """The fastest speed the scene sets (m/s): inflow faces and emitter velocities. The
        CFL substep count needs at least this; buoyant flow can get faster on its own."""
        speeds = [math.hypot(*e.velocity) for e in self.emitters]
        speeds += [math.hypot(*f.velocity) for f in (self.boundaries.face(n) for n in FACE_NAMES) if not isinstance(f, str)]
        return max(speeds, default=0.0)

    @model_validator(mode="after")
    def _consistent(self) -> "GasSpec":
        faces = {name: self.boundaries.face(name) for name in FACE_NAMES}
        inflows = [name for name, face in faces.items() if isinstance(face, Inflow)]
        # The same rule as the solver's (hybrid.fields.gas): incompressible air blown into a
        # closed box has no pressure field that makes it divergence free.
        if inflows and not {"open", "pass_through"} & {f for f in faces.values() if isinstance(f, str)}:
            raise SpecValueError(
                f"`{inflows[0]}` blows air in but no face is `open` (or `pass_through`), so it has nowhere to go; "
                "make the opposite face (or another one) `open`",
                at=("boundaries", inflows[0]),
            )
        if any(e.fuel > 0 for e in self.emitters) and self.combustion is None:
            raise SpecValueError(
                "an emitter adds fuel but there is no `combustion:` section to burn it; add `combustion: {}` "
                "for fire with default settings, or set the emitters' fuel to 0",
                at=("combustion",),
            )
        return self




# ---------------------------------------------------------------- liquid and granular media


MATERIALS = ("water", "sand", "snow", "jelly")


class FillRegion(Spec):
    """A region filled with particles at the start: a `box` (min, max) or a `sphere` (center, radius)."""

    shape: Literal["box", "sphere"] = "box"
    min: Optional[Vec3] = None
    max: Optional[Vec3] = None
    center: Optional[Vec3] = None
    radius: Optional[Positive] = None
    velocity: Vec3 = (0.0, 0.0, 0.0)

    @model_validator(mode="after")
    def _shape(self) -> "FillRegion":
        if self.shape == "box":
            if self.min is None or self.max is None:
                raise SpecValueError("a box fill needs `min` and `max` corners", at=("min",))
            if any(not hi > lo for lo, hi in zip(self.min, self.max)):
                raise SpecValueError("a box fill's `max` must exceed its `min` on every axis", at=("max",))
        else:
            if self.center is None or self.radius is None:
                raise SpecValueError("a sphere fill needs `center` and `radius`", at=("center",))
        return self

    @property
    def volume(self) -> float:
        if self.shape == "box":
            return math.prod(hi - lo for lo, hi in zip(self.min, self.max))  # type: ignore[arg-type]
        return 4.0 / 3.0 * math.pi * self.radius**3  # type: ignore[operator]


class LiquidLook(Spec):
    color: Color = Field((0.55, 0.75, 0.9), description="tint of the surface")
    roughness: Unit = 0.05
    opacity: Unit = Field(0.6, description="0 fully clear, 1 opaque")


# FLIP share of water's particle velocity update by default. A Taylor-Green vortex of
# 20 cells per half wavelength (2 cm cells, sound speed 10 m/s) lost energy as if the
# water had a kinematic viscosity of 4.6e-3 m^2/s with APIC alone and 2.3e-3 with this
# share; a sphere 4 cells across pulled through still water at 0.5 m/s (sound speed
# 20 m/s) felt 0.39 of APIC's drag. The solids keep APIC: their checks (sand's pile,
# jelly's bounce) were made with it, and FLIP's noise in plastic flow is untested.
# What remains grows with the sound speed, not with the substep count: the same vortex
# (3.3 cm cells) lost energy as if nu = 2.2e-3, 4.5e-3 and 9.6e-3 m^2/s at c = 5, 10 and
# 20 m/s, but 3.9e-3 and 5.4e-3 with half and twice as many substeps at c = 10 (cfl 0.8
# and 0.2), and 3.3e-3 with FLIP alone: about c dx / 80, and 1.8e-3 at 1.67 cm cells.
WATER_FLIP = 0.95


class LiquidSpec(Spec):
    """An MLS-MPM particle continuum: water (weakly compressible), sand, snow or jelly."""

    domain: Domain
    resolution: Annotated[Int, Field(ge=8, le=512)] = Field(48, description="grid cells along the longest side")
    material: str = Field("water", description="water | sand | snow | jelly")
    density: Positive = Field(1000.0, description="kg/m^3 at rest")
    fill: tuple[FillRegion, ...] = Field(min_length=1)
    particles_per_cell: Annotated[Int, Field(ge=1, le=64)] = Field(8, description="particles per grid cell at the start")
    sound_speed: Positive = Field(
        20.0,
        description="m/s; sets the stiffness of water (bulk modulus = density x sound_speed^2). Keep it about ten "
        "times the fastest flow: higher is stiffer, needs more substeps and damps the flow more (the solver's "
        "numerical viscosity grows in proportion, about sound_speed x cell / 80 with FLIP)",
    )
    viscosity: NonNegative = Field(0.0, description="dynamic viscosity in Pa s (water: 0.001; 0 turns it off)")
    flip: Optional[Annotated[Float, Field(ge=0, le=1)]] = Field(
        None,
        description="share of FLIP in the particles' velocity update, the rest APIC's gathered grid velocity "
        "(default: 0.95 for water, 0 for sand, snow and jelly). APIC alone damps the flow at every substep "
        "(a numerical viscosity near 0.005 m^2/s at 2 cm cells); FLIP keeps water lively",
    )
    youngs_modulus: Optional[Positive] = Field(None, description="Pa, for sand, snow and jelly (default per material)")
    poisson_ratio: Annotated[Float, Field(ge=0, lt=0.5)] = 0.3
    friction_angle_deg: Annotated[Float, Field(gt=0, lt=90)] = Field(30.0, description="sand only")
    walls: Literal["slip", "sticky", "separate"] = Field(
        "separate", description="the domain's own faces: slip along them, stick to them, or leave them freely"
    )
    cfl: Annotated[Float, Field(gt=0, le=1)] = 0.4
    max_substeps: Annotated[Int, Field(ge=1, le=100000)] = Field(
        2000, description="most particle substeps per video frame; more needed is an error"
    )
    max_particles: Annotated[Int, Field(ge=1)] = Field(2_000_000, description="refuse fills with more particles")
    look: LiquidLook = LiquidLook()

    @property
    def flip_ratio(self) -> float:
        """The FLIP share the solver uses: `flip`, else WATER_FLIP for water and 0 for the solids."""
        return float(self.flip) if self.flip is not None else (WATER_FLIP if self.material == "water" else 0.0)

    @model_validator(mode="after")
    def _material(self) -> "LiquidSpec":
        import difflib

        if self.material not in MATERIALS:
            close = difflib.get_close_matches(self.material, MATERIALS, n=1)
            raise SpecValueError(
                f"unknown liquid material {self.material!r}; use one of {', '.join(MATERIALS)}",
                at=("material",),
                suggestion=close[0] if close else None,
            )
        return self


class FieldsSpec(Spec):
    """Continuous fields simulated with Taichi in lockstep with the rigid bodies."""

    arch: Arch = Field("auto", description="Taichi backend; auto tries cuda, then vulkan, then falls back to cpu")
    deterministic: bool = Field(
        True,
        description="kept so that older scenes load; it changes nothing: on the CPU every run gives bit-identical "
        "fields at any thread count (every core, or HYBRID_FIELD_THREADS), on a GPU the last bits vary",
    )
    coupling: Literal["two_way", "one_way"] = Field(
        "two_way", description="one_way: bodies push the fluids but feel no buoyancy or drag from them"
    )
    memory_limit_gb: Positive = Field(8.0, description="refuse grids and particle sets estimated to need more")
    gas: Optional[GasSpec] = None
    liquid: Optional[LiquidSpec] = None

    @model_validator(mode="after")
    def _something(self) -> "FieldsSpec":
        if self.gas is None and self.liquid is None:
            raise SpecValueError("`fields:` needs a `gas:` or a `liquid:` section (or remove `fields:`)")
        return self
