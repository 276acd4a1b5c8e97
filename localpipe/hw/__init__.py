"""What the workstation offers a pipeline: CPUs and memory (psutil), NVIDIA GPUs (NVML) and Azure VM sizes.

Only `gpus` talks to NVML; `fake_nvml` stands in for it in tests and on machines without a GPU.
"""
