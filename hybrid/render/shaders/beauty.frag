#version 330 core
// HDR beauty pass, fragment stage: scene-linear radiance into a float target.
//
// Nothing here clamps or encodes: the output is the light leaving the surface
// towards the camera, in the scene's linear units (a white Lambertian-like surface
// lit head-on by a directional light of intensity I returns about 0.3 I), so values
// above 1 survive for exposure, bloom and tone mapping to act on.
//
// Interface: the uniform names and the struct members below follow pyrender
// 0.1.45's mesh shader (material.*, directional_lights[i].*, spot_lights[i].*,
// point_lights[i].*, n_*_lights, ambient_light, cam_pos) and its defines
// (MAX_*_LIGHTS, *_LIGHT_SHADOWS, HAS_BASE_COLOR_TEX, ...), so pyrender's Renderer
// binds lights, shadow maps, textures and material factors for this program exactly
// as for its own. Only what hybrid's materials use is implemented; the Python side
// refuses primitives that would need more (see beauty.py). pyrender's loader turns
// each `#ifdef NAME` line into `#if 1` or `#if 0` and then replaces the name
// everywhere else by its value, so conditions here are single-name #ifdef lines.
//
// Shading model: the one pyrender uses, term for term, so that this radiance,
// clamped to 0..1 and raised to 1/2.2, reproduces pyrender's 8-bit output. For a
// light of radiance E (intensity x colour, divided by distance^2 for point and
// spot lights, times the spot cone factor), with r = clamp(roughness, 0.04, 1):
//
//   L = E nl [ (1 - F) c_diff / pi  +  F G D / (4 nl nv + 0.001) ] (1 - shadow)
//   F = f0 + (1 - f0) (1 - vh)^5                              Schlick Fresnel
//   G = g(nl) g(nv),  g(x) = x / (x (1 - k) + k),  k = (r + 1)^2 / 8
//   D = a2 / (pi (nh^2 (a2 - 1) + 1)^2),  a2 = r^4           GGX
//   c_diff = base (1 - 0.04) (1 - metallic),  f0 = mix(0.04, base, metallic)
//
// nl and nv are clamped to at least 0.001 (as pyrender does), so a surface facing
// away from a light still gets 0.1 % of its diffuse term. Emission adds the emissive
// factor (x texture).
//
// Light arriving from every direction (ambient_light, radiance L_a, and a scene
// environment, defined HAS_ENVIRONMENT) is reflected by the split-sum approximation
// (Karis 2013) where pyrender adds base x L_a alone:
//
//   L = (1 - S) base (1 - metallic) (L_a + E(n) / pi) + S (L_a + E(r) / pi)
//   S = f0 A(r, nv) + B(r, nv)      the GGX specular albedo, A and B from Lazarov's fit
//
// with E the environment's irradiance on a direction from nine spherical-harmonic
// terms (hybrid/render/sh.py computes env_sh = A_l L_lm / pi on the CPU), n the normal
// and r the mirror direction of the view. E(r) / pi is the environment seen in the
// mirror direction blurred by a cosine lobe: right for rough surfaces, too soft for
// polished ones. A uniform environment of radiance L adds what an ambient light L
// does. Nothing occludes either (no ambient or environment shadows here). Without it
// a glossy floor under a bright sky comes out saturated and dark where the path tracer
// shows it desaturated towards the sky's colour (a neutral 0.06 x L_a at roughness
// 0.4 seen from above, twice that at grazing angles).

#define PI 3.141592653589793
#define MIN_ROUGHNESS 0.04
// Largest finite half float: the target is RGBA16F, and an infinity there would
// spread through every blur downstream.
#define HALF_MAX 65504.0

struct DirectionalLight {
    vec3 color;
    float intensity;
    vec3 direction;
#ifdef DIRECTIONAL_LIGHT_SHADOWS
    sampler2D shadow_map;
    mat4 light_matrix;
#endif
};

struct SpotLight {
    vec3 color;
    float intensity;
    vec3 position;
    vec3 direction;
    float light_angle_scale;
    float light_angle_offset;
#ifdef SPOT_LIGHT_SHADOWS
    sampler2D shadow_map;
    mat4 light_matrix;
#endif
};

struct PointLight {
    vec3 color;
    float intensity;
    vec3 position;
};

struct Material {
    vec3 emissive_factor;
    vec4 base_color_factor;  // linear
    float metallic_factor;
    float roughness_factor;
#ifdef HAS_BASE_COLOR_TEX
    sampler2D base_color_texture;  // an sRGB texture (mipmaps.py): samples arrive linear
#endif
#ifdef HAS_EMISSIVE_TEX
    sampler2D emissive_texture;    // sRGB-encoded texels (a plain pyrender texture; looks set none)
#endif
#ifdef HAS_OCCLUSION_TEX
    sampler2D occlusion_texture;   // linear, red channel
#endif
};

uniform Material material;
uniform DirectionalLight directional_lights[MAX_DIRECTIONAL_LIGHTS];
uniform int n_directional_lights;
uniform SpotLight spot_lights[MAX_SPOT_LIGHTS];
uniform int n_spot_lights;
uniform PointLight point_lights[MAX_POINT_LIGHTS];
uniform int n_point_lights;
uniform vec3 cam_pos;        // camera centre, world frame
uniform vec3 ambient_light;  // linear
#ifdef HAS_ENVIRONMENT
// Order-2 SH coefficients of the environment's irradiance / pi, in sh.py's basis order.
uniform vec3 env_sh[9];
#endif

in vec3 v_world_position;
#ifdef NORMAL_LOC
in vec3 v_world_normal;
#endif
#ifdef TEXCOORD_0_LOC
in vec2 v_uv;
#endif
#ifdef COLOR_0_LOC
in vec4 v_vertex_color;
#endif

layout(location = 0) out vec4 out_radiance;

// The exact piecewise sRGB decoding (IEC 61966-2-1) of texel values.
vec3 decode_srgb(vec3 c)
{
    vec3 low = c / 12.92;
    vec3 high = pow((c + 0.055) / 1.055, vec3(2.4));
    return mix(low, high, step(vec3(0.04045), c));
}

vec3 surface_normal()
{
#ifdef NORMAL_LOC
    return normalize(v_world_normal);
#else
    // Without normals a surface faces the camera.
    return normalize(cam_pos - v_world_position);
#endif
}

#ifdef HAS_ENVIRONMENT
// The environment's irradiance on unit normal n, over pi (sh.py: sh_basis, irradiance), clamped at 0.
vec3 environment_irradiance_over_pi(vec3 n)
{
    vec3 e = env_sh[0] * 0.28209479177387814
           + (env_sh[1] * n.y + env_sh[2] * n.z + env_sh[3] * n.x) * 0.4886025119029199
           + (env_sh[4] * (n.x * n.y) + env_sh[5] * (n.y * n.z) + env_sh[7] * (n.x * n.z)) * 1.0925484305920792
           + env_sh[6] * ((3.0 * n.z * n.z - 1.0) * 0.31539156525252005)
           + env_sh[8] * ((n.x * n.x - n.y * n.y) * 0.5462742152960396);
    return max(e, vec3(0.0));
}
#endif

// The specular albedo's scale and bias (A, B) for roughness r at n.v = nv: Lazarov's
// analytic fit of the split-sum GGX table (as in Unreal's EnvBRDFApprox).
vec2 specular_albedo_terms(float r, float nv)
{
    const vec4 c0 = vec4(-1.0, -0.0275, -0.572, 0.022);
    const vec4 c1 = vec4(1.0, 0.0425, 1.04, -0.04);
    vec4 q = r * c0 + c1;
    float a004 = min(q.x * q.x, exp2(-9.28 * nv)) * q.x + q.y;
    return vec2(-1.04, 1.04) * a004 + q.zw;
}

// Light reflected towards v from a light in direction l with radiance E (see the header).
vec3 reflected(vec3 n, vec3 v, vec3 l, vec3 E, float r, vec3 f0, vec3 c_diff)
{
    vec3 h = normalize(l + v);
    float nl = clamp(dot(n, l), 0.001, 1.0);
    float nv = clamp(abs(dot(n, v)), 0.001, 1.0);
    float nh = clamp(dot(n, h), 0.0, 1.0);
    float vh = clamp(dot(v, h), 0.0, 1.0);

    vec3 F = f0 + (1.0 - f0) * pow(clamp(1.0 - vh, 0.0, 1.0), 5.0);

    float k = (r + 1.0) * (r + 1.0) / 8.0;
    float G = (nv / (nv * (1.0 - k) + k)) * (nl / (nl * (1.0 - k) + k));

    float a = r * r;
    float a2 = a * a;
    float d = nh * nh * (a2 - 1.0) + 1.0;
    float D = a2 / (PI * d * d);

    vec3 diffuse = (1.0 - F) * c_diff / PI;
    vec3 specular = F * G * D / (4.0 * nl * nv + 0.001);
    return nl * E * (diffuse + specular);
}

// 1 where the shadow map holds something nearer the light than `depth`.
float occluded(sampler2D map, vec2 uv, float depth)
{
    return depth > texture(map, uv).r ? 1.0 : 0.0;
}

// Depth-compare the four texels around uv and blend the answers bilinearly, so
// a shadow edge ramps across one texel instead of stepping.
float occluded_bilinear(sampler2D map, vec2 size, vec2 uv, float depth)
{
    vec2 texel = vec2(1.0) / size;
    vec2 at = uv * size + 0.5;
    vec2 w = fract(at);
    vec2 corner = floor(at) / size;
    float s00 = occluded(map, corner, depth);
    float s01 = occluded(map, corner + texel * vec2(0.0, 1.0), depth);
    float s10 = occluded(map, corner + texel * vec2(1.0, 0.0), depth);
    float s11 = occluded(map, corner + texel * vec2(1.0, 1.0), depth);
    return mix(mix(s00, s01, w.y), mix(s10, s11, w.y), w.x);
}

// Fraction of the light a point does not receive: the bilinear compare averaged
// over a 3 x 3 block of texel offsets (percentage-closer filtering). `l` is the unit
// direction from the point to the light.
float shadow_fraction(mat4 light_matrix, sampler2D map, float n_dot_l, vec3 l)
{
    vec4 clip = light_matrix * vec4(v_world_position, 1.0);
    vec2 size = vec2(textureSize(map, 0));
    // The bias, in metres: the point is moved that far towards the light before its depth is
    // compared, which works alike for orthographic (directional) and perspective (spot)
    // maps. Slope-scaled in texels: the filter's taps reach 2 texels, over which a surface
    // at angle theta to the light recedes by 2 texels x tan(theta); 2.5 of them plus one
    // texel for the depth quantisation keeps any surface from shadowing itself. A texel
    // spans 2 w / (size |row 0|) metres at the point (w = 1 for an orthographic map).
    float texel = 2.0 * clip.w / (size.x * length(vec3(light_matrix[0][0], light_matrix[1][0], light_matrix[2][0])));
    float tan_theta = sqrt(max(1.0 - n_dot_l * n_dot_l, 0.0)) / max(n_dot_l, 0.1);
    clip = light_matrix * vec4(v_world_position + l * texel * (1.0 + 2.5 * tan_theta), 1.0);
    vec3 p = clip.xyz / clip.w * 0.5 + 0.5;
    if (p.z > 1.0) {
        return 0.0;  // beyond the shadow camera's far plane: never shadowed
    }
    // Row 3 of an orthographic (directional) light's matrix is (0, 0, 0, 1). Its map is
    // fitted to every caster and its shadow with a margin of 4 texels (shadow_fit.py):
    // outside it nothing is shadowed; stopping 3 texels short of its border keeps the
    // filter's taps (2.5 texels out) from wrapping round to the far side.
    if (length(vec3(light_matrix[0][3], light_matrix[1][3], light_matrix[2][3])) < 1e-9) {
        vec2 edge = vec2(3.0) / size;
        if (any(lessThan(p.xy, edge)) || any(greaterThan(p.xy, vec2(1.0) - edge))) {
            return 0.0;
        }
    }
    float depth = p.z;
    float sum = 0.0;
    for (int i = -1; i <= 1; i++) {
        for (int j = -1; j <= 1; j++) {
            sum += occluded_bilinear(map, size, p.xy + vec2(i, j) / size, depth);
        }
    }
    return sum / 9.0;
}

void main()
{
    vec4 base = material.base_color_factor;
#ifdef HAS_BASE_COLOR_TEX
    // Decoded by the sampler before filtering, so distant texels average in linear light.
    base *= texture(material.base_color_texture, v_uv);
#endif
    float r = clamp(material.roughness_factor, MIN_ROUGHNESS, 1.0);
    float metallic = clamp(material.metallic_factor, 0.0, 1.0);
    vec3 c_diff = mix(vec3(0.0), base.rgb * (1.0 - MIN_ROUGHNESS), 1.0 - metallic);
    vec3 f0 = mix(vec3(MIN_ROUGHNESS), base.rgb, metallic);

    vec3 n = normalize(surface_normal());
    vec3 v = normalize(cam_pos - v_world_position);
    vec3 radiance = vec3(0.0);

    for (int i = 0; i < n_directional_lights; i++) {
        vec3 l = normalize(-directional_lights[i].direction);
        vec3 E = directional_lights[i].intensity * directional_lights[i].color;
        vec3 lit = reflected(n, v, l, E, r, f0, c_diff);
#ifdef DIRECTIONAL_LIGHT_SHADOWS
        lit *= 1.0 - shadow_fraction(directional_lights[i].light_matrix, directional_lights[i].shadow_map,
                                     clamp(dot(n, l), 0.0, 1.0), l);
#endif
        radiance += lit;
    }

    for (int i = 0; i < n_point_lights; i++) {
        vec3 to_light = point_lights[i].position - v_world_position;
        vec3 l = normalize(to_light);
        float dist = length(to_light);
        vec3 E = point_lights[i].intensity / (dist * dist) * point_lights[i].color;
        radiance += reflected(n, v, l, E, r, f0, c_diff);
    }

    for (int i = 0; i < n_spot_lights; i++) {
        vec3 to_light = spot_lights[i].position - v_world_position;
        vec3 l = normalize(to_light);
        float dist = length(to_light);
        // Smooth cone: 1 inside the inner angle, 0 outside the outer, squared in between.
        float cone = clamp(clamp(dot(spot_lights[i].direction, -l), 0.0, 1.0) * spot_lights[i].light_angle_scale
                           + spot_lights[i].light_angle_offset, 0.0, 1.0);
        vec3 E = cone * cone * spot_lights[i].intensity / (dist * dist) * spot_lights[i].color;
        vec3 lit = reflected(n, v, l, E, r, f0, c_diff);
#ifdef SPOT_LIGHT_SHADOWS
        lit *= 1.0 - shadow_fraction(spot_lights[i].light_matrix, spot_lights[i].shadow_map,
                                     clamp(dot(n, l), 0.0, 1.0), l);
#endif
        radiance += lit;
    }

    // Ambient light and the environment: split sum (see the header).
    vec2 ab = specular_albedo_terms(r, clamp(abs(dot(n, v)), 0.001, 1.0));
    vec3 S = f0 * ab.x + ab.y;
    vec3 diffuse_in = ambient_light;
    vec3 specular_in = ambient_light;
#ifdef HAS_ENVIRONMENT
    diffuse_in += environment_irradiance_over_pi(n);
    specular_in += environment_irradiance_over_pi(reflect(-v, n));
#endif
    radiance += (1.0 - S) * base.rgb * (1.0 - metallic) * diffuse_in + S * specular_in;

#ifdef HAS_OCCLUSION_TEX
    radiance *= texture(material.occlusion_texture, v_uv).r;
#endif

    // glTF emission: factor times texel, added once (pyrender's own shader multiplies
    // the factor in twice). A look's emission is radiance, as in Cycles.
    vec3 emission = material.emissive_factor;
#ifdef HAS_EMISSIVE_TEX
    emission *= decode_srgb(texture(material.emissive_texture, v_uv).rgb);
#endif
    radiance += emission;

#ifdef COLOR_0_LOC
    radiance *= v_vertex_color.rgb;
#endif

    // A transmissive surface (base alpha = 1 - transmission, materials.py) lets the light
    // behind it through by its transmission less its Fresnel reflectance (Schlick, F0 = 0.04:
    // glass and water): blended over what was drawn, out = radiance + (1 - alpha) behind.
    float transmission = 1.0 - material.base_color_factor.a;
    if (transmission > 0.0) {
        float fresnel = 0.04 + 0.96 * pow(1.0 - clamp(abs(dot(n, v)), 0.0, 1.0), 5.0);
        float alpha = clamp(1.0 - transmission * (1.0 - fresnel), 1e-3, 1.0);
        out_radiance = vec4(min(radiance / alpha, vec3(HALF_MAX)), alpha);
        return;
    }
    out_radiance = vec4(min(radiance, vec3(HALF_MAX)), 1.0);
}
