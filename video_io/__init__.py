"""video_io"""
