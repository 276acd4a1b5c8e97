"""The Azure VM size table and its lookup."""

import pytest

from localpipe.errors import UsageError
from localpipe.hw.azure_sizes import VM_SIZES, lookup_vm_size

GIB = 1024**3

# (name, vCPUs, GPUs, memory GiB) from Microsoft's size pages.
DOCUMENTED = [
    ("STANDARD_D1_V2", 1, 0, 3.5),
    ("STANDARD_D2_V2", 2, 0, 7),
    ("STANDARD_D3_V2", 4, 0, 14),
    ("STANDARD_D4_V2", 8, 0, 28),
    ("STANDARD_D11_V2", 2, 0, 14),
    ("STANDARD_D2S_V3", 2, 0, 8),
    ("STANDARD_D4S_V3", 4, 0, 16),
    ("STANDARD_D8S_V3", 8, 0, 32),
    ("STANDARD_DS3_V2", 4, 0, 14),
    ("STANDARD_F4S_V2", 4, 0, 8),
    ("STANDARD_NC6", 6, 1, 56),
    ("STANDARD_NC12", 12, 2, 112),
    ("STANDARD_NC24", 24, 4, 224),
    ("STANDARD_NC6S_V3", 6, 1, 112),
    ("STANDARD_NC12S_V3", 12, 2, 224),
    ("STANDARD_NC24S_V3", 24, 4, 448),
    ("STANDARD_NC4AS_T4_V3", 4, 1, 28),
    ("STANDARD_NC8AS_T4_V3", 8, 1, 56),
    ("STANDARD_ND40RS_V2", 40, 8, 672),
    ("STANDARD_ND96ASR_V4", 96, 8, 900),
    ("STANDARD_NV6", 6, 1, 56),
    ("STANDARD_DS12_V2", 4, 0, 28),
    ("STANDARD_E16S_V3", 16, 0, 128),
    ("STANDARD_F16S_V2", 16, 0, 32),
]


@pytest.mark.parametrize(("name", "cpus", "gpus", "gib"), DOCUMENTED)
def test_documented_sizes(name, cpus, gpus, gib):
    size = lookup_vm_size(name)
    assert (size.name, size.cpus, size.gpus, size.memory_bytes) == (name, cpus, gpus, int(gib * GIB))
    assert size.spelled.upper() == name


@pytest.mark.parametrize("spelling", ["Standard_NC6s_v3", "standard_nc6s_v3", " STANDARD_NC6S_V3 "])
def test_lookup_ignores_case(spelling):
    assert lookup_vm_size(spelling).name == "STANDARD_NC6S_V3"


def test_table_keys_are_upper_case_names():
    assert all(key == size.name == size.name.upper() for key, size in VM_SIZES.items())


def test_unknown_size_names_it_the_closest_and_where_the_list_is():
    with pytest.raises(UsageError) as caught:
        lookup_vm_size("Standard_NC6s_v9")
    message = str(caught.value)
    assert "'Standard_NC6s_v9'" in message
    assert "did you mean STANDARD_NC6S_V" in message and "AmlCompute.supported_vmsizes(ws)" in message
    assert "\n" not in message
    assert caught.value.exit_code == 2
