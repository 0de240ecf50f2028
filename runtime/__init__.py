"""Runtime services shared by every stage: devices, progress, model handles, checkpoints, the headless runner."""
