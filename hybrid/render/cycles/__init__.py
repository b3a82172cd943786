"""The Cycles path tracer as a beauty back end (``--renderer cycles``), through Blender's ``bpy`` module.

``build`` maps a Scene onto Blender data, ``renderer`` renders one frame's State
with it and reads the passes back; ``options`` holds the settings. Importing this
package does not import bpy: ``renderer.import_bpy`` does, with a clear error when
it is missing.
"""
