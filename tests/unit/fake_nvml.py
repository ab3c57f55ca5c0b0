"""A stand-in for the pynvml module: NVML's answers for GPUs this machine does not have.

Only the answers are fake; the probe under test (llm_installer.check.hardware) is the real code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace


class NVMLError(Exception):
    pass


class NVMLError_NotFound(NVMLError):  # noqa: N801 - pynvml's name
    pass


class NVMLError_NoPermission(NVMLError):  # noqa: N801
    pass


@dataclass
class FakeGpu:
    name: str
    total_gib: float = 24
    free_gib: float = 23
    capability: tuple[int, int] = (8, 6)
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    broken: bool = False  # every query fails, like a GPU that fell off the bus
    mig: list[FakeGpu | None] | None = None  # MIG mode on: slots (None = empty slot)
    mig_error: type[NVMLError] | None = None  # listing the instances fails (e.g. non-root)


@dataclass
class FakeNvml:
    gpus: list[FakeGpu]
    driver: str = "580.95.05"
    cuda: int = 13000
    driver_error: bool = False
    NVML_DEVICE_MIG_ENABLE: int = 1
    NVMLError: type = NVMLError
    NVMLError_NotFound: type = NVMLError_NotFound
    NVMLError_NoPermission: type = NVMLError_NoPermission
    calls: list[str] = field(default_factory=list)

    def nvmlInit(self):  # noqa: N802 - pynvml's names below
        self.calls.append("init")

    def nvmlShutdown(self):  # noqa: N802
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self):  # noqa: N802
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):  # noqa: N802
        gpu = self.gpus[index]
        if gpu.broken:
            raise NVMLError("Unknown Error")
        return gpu

    def nvmlDeviceGetMemoryInfo(self, gpu):  # noqa: N802
        return SimpleNamespace(total=int(gpu.total_gib * 2**30), free=int(gpu.free_gib * 2**30))

    def nvmlDeviceGetName(self, gpu):  # noqa: N802
        return gpu.name.encode()

    def nvmlDeviceGetUUID(self, gpu):  # noqa: N802
        return gpu.uuid

    def nvmlDeviceGetCudaComputeCapability(self, gpu):  # noqa: N802
        return gpu.capability

    def nvmlDeviceGetMigMode(self, gpu):  # noqa: N802
        if gpu.mig is None:
            raise NVMLError("Not Supported")
        return (1, 1)

    def nvmlDeviceGetMaxMigDeviceCount(self, gpu):  # noqa: N802
        if gpu.mig_error:
            raise gpu.mig_error("Insufficient Permissions")
        return len(gpu.mig)

    def nvmlDeviceGetMigDeviceHandleByIndex(self, gpu, slot):  # noqa: N802
        instance = gpu.mig[slot]
        if instance is None:
            raise NVMLError_NotFound("Not Found")
        return instance

    def nvmlSystemGetDriverVersion(self):  # noqa: N802
        if self.driver_error:
            raise NVMLError("Driver Not Loaded")
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self):  # noqa: N802
        return self.cuda
