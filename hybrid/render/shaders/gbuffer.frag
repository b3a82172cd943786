#version 330 core
// G-buffer pass, fragment stage: geometry in float, labels in integers, no lighting.

in vec3 v_normal_cam;
in float v_z_cam;
in vec2 v_uv;
#ifdef COLOR_0_LOC
in vec4 v_vertex_color;
#endif

uniform uint instance_id;
uniform vec3 base_color;  // display (sRGB-encoded) colour 0..1
#ifdef HAS_BASE_COLOR_TEX
uniform sampler2D base_color_texture;
#endif

layout(location = 0) out vec4 out_geometry;  // unit normal (camera OpenCV axes), z-depth in metres
layout(location = 1) out uvec4 out_labels;   // albedo bytes r, g, b; instance id

#ifdef HAS_BASE_COLOR_TEX
// The exact piecewise sRGB encoding (IEC 61966-2-1), the inverse of the texture's decoding.
vec3 encode_srgb(vec3 x)
{
    x = clamp(x, 0.0, 1.0);
    vec3 low = x * 12.92;
    vec3 high = 1.055 * pow(x, vec3(1.0 / 2.4)) - 0.055;
    return mix(low, high, step(vec3(0.0031308), x));
}
#endif

#ifdef COLOR_0_LOC
// The same pair of curves for the vertex colour's product (the shader preprocessor
// takes one name per #ifdef).
vec3 encode_srgb_v(vec3 x)
{
    x = clamp(x, 0.0, 1.0);
    vec3 low = x * 12.92;
    vec3 high = 1.055 * pow(x, vec3(1.0 / 2.4)) - 0.055;
    return mix(low, high, step(vec3(0.0031308), x));
}

vec3 decode_srgb_v(vec3 c)
{
    vec3 low = c / 12.92;
    vec3 high = pow((c + 0.055) / 1.055, vec3(2.4));
    return mix(low, high, step(vec3(0.04045), c));
}
#endif

void main()
{
    vec3 n = v_normal_cam;
    float len = length(n);
    n = len > 0.0 ? n / len : vec3(0.0);
    out_geometry = vec4(n, v_z_cam);

    vec3 albedo = base_color;
#ifdef HAS_BASE_COLOR_TEX
    // The sRGB texture hands over linear texels, filtered in linear light (mipmaps.py);
    // albedo is colour x texel in display values (materials.py), so encode them back.
    albedo *= encode_srgb(texture(base_color_texture, v_uv).rgb);
#endif
#ifdef COLOR_0_LOC
    // The beauty pass multiplies linear radiance by the vertex colour; the albedo is
    // the same product, encoded back to display values.
    albedo = encode_srgb_v(decode_srgb_v(albedo) * v_vertex_color.rgb);
#endif
    uvec3 bytes = uvec3(floor(clamp(albedo, 0.0, 1.0) * 255.0 + 0.5));
    out_labels = uvec4(bytes, instance_id);
}
