"""Training SVU models with Accelerate: `accelerate launch train/run.py --config train/configs/<name>.yaml`."""
