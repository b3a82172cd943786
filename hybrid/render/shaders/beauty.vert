#version 330 core
// HDR beauty pass, vertex stage.
//
// The inputs follow pyrender 0.1.45's mesh shader interface so that pyrender's
// Renderer can drive this program unchanged: attribute locations come from the
// NORMAL_LOC / TEXCOORD_0_LOC / COLOR_0_LOC / INST_M_LOC defines it derives from each
// primitive's buffers, and it sets the uniforms M (object -> world), V (world ->
// camera, OpenGL axes) and P (camera -> clip). Locations of attributes this pass does
// not read (tangents, a second uv set, skinning) are still reserved by those defines.

layout(location = 0) in vec3 position;
#ifdef NORMAL_LOC
layout(location = NORMAL_LOC) in vec3 normal;
#endif
#ifdef TEXCOORD_0_LOC
layout(location = TEXCOORD_0_LOC) in vec2 texcoord_0;
#endif
#ifdef COLOR_0_LOC
layout(location = COLOR_0_LOC) in vec4 color_0;
#endif
layout(location = INST_M_LOC) in mat4 inst_m;

uniform mat4 M;
uniform mat4 V;
uniform mat4 P;

out vec3 v_world_position;  // metres, world frame
#ifdef NORMAL_LOC
out vec3 v_world_normal;    // unit length at the vertices, world frame
#endif
#ifdef TEXCOORD_0_LOC
out vec2 v_uv;
#endif
#ifdef COLOR_0_LOC
out vec4 v_vertex_color;
#endif

void main()
{
    mat4 model = M * inst_m;
    // The product is written in the same order as pyrender's own vertex stage, so
    // both passes place every vertex at the same float position: the same pixels
    // (and multisample samples) are covered, and the two agree along silhouettes.
    gl_Position = P * V * M * inst_m * vec4(position, 1.0);
    v_world_position = vec3(model * vec4(position, 1.0));
#ifdef NORMAL_LOC
    // Normals move with the inverse transpose, which keeps them perpendicular to
    // the surface under non-uniform scale.
    v_world_normal = normalize(transpose(inverse(mat3(model))) * normal);
#endif
#ifdef TEXCOORD_0_LOC
    v_uv = texcoord_0;
#endif
#ifdef COLOR_0_LOC
    v_vertex_color = color_0;
#endif
}
