"""Reading and writing clips: MP4 through ffmpeg, the clip folder, preview sheets."""
