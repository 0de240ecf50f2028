"""sprites"""
