"""interpolation"""
