#version 330 core
// G-buffer pass, vertex stage. Attribute locations follow pyrender's layout: the
// renderer substitutes NORMAL_LOC, TEXCOORD_0_LOC, COLOR_0_LOC and INST_M_LOC from each mesh's buffers.

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

uniform mat4 model_view;     // object frame -> camera frame, OpenCV axes (x right, y down, z forward)
uniform mat3 normal_matrix;  // inverse transpose of model_view's 3x3 part (times inst_m for instanced meshes)
uniform mat4 projection;     // OpenCV camera frame -> clip space

out vec3 v_normal_cam;
out float v_z_cam;
out vec2 v_uv;
#ifdef COLOR_0_LOC
out vec4 v_vertex_color;  // linear multiplier of the albedo (a burning object's char, scene_build.show_burn)
#endif

void main()
{
    vec4 p_cam = model_view * inst_m * vec4(position, 1.0);
    gl_Position = projection * p_cam;
    // z along the optical axis, interpolated perspective-correctly: exact on planar facets.
    v_z_cam = p_cam.z;
#ifdef NORMAL_LOC
    v_normal_cam = normal_matrix * mat3(inst_m) * normal;
#else
    v_normal_cam = vec3(0.0);
#endif
#ifdef TEXCOORD_0_LOC
    v_uv = texcoord_0;
#else
    v_uv = vec2(0.0);
#endif
#ifdef COLOR_0_LOC
    v_vertex_color = color_0;
#endif
}
