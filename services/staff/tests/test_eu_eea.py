"""§9: a recipient or processor outside the EU/EEA refuses start-up with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from staff_support import staff_settings

from lampo.staff.app import build
from lampo.staff.errors import ConfigurationRefused
from lampo.staff.settings import DATAMAP_FILE, Recipient


def test_eu_eea_recipients_start() -> None:
    settings = staff_settings(
        recipients=[Recipient(name="Hosting", country="FI"), Recipient(name="Mail", country="NO")]
    )
    assert build(settings).roles  # builds; nothing connects until start
    assert DATAMAP_FILE.exists()  # the suite's data map is checked too


@pytest.mark.parametrize("country", ["US", "GB", "CH", "fi", "XX"])
def test_a_recipient_outside_the_eu_eea_refuses_start_up(country: str) -> None:
    settings = staff_settings(recipients=[Recipient(name="Cloud Analytics Inc.", country=country)])
    with pytest.raises(ConfigurationRefused) as refused:
        build(settings)
    assert "Cloud Analytics Inc." in refused.value.detail and "EU/EEA" in refused.value.detail


def test_a_data_map_recipient_outside_the_eu_eea_refuses_start_up(tmp_path: Path) -> None:
    datamap = tmp_path / "datamap.toml"
    datamap.write_text('[categories.contact]\nrecipients = [{ name = "Print Corp", country = "US" }]\n')
    with pytest.raises(ConfigurationRefused, match=r"'Print Corp' \(datamap.toml: contact\): country US is outside"):
        build(staff_settings(datamap_file=datamap))


def test_the_service_command_exits_with_the_message() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMPO_")}
    env |= {
        "LAMPO_MASTER_KEY": "A" * 43 + "=",
        "LAMPO_RECIPIENTS": '[{"name": "Offshore Support Ltd", "country": "IN"}]',
    }
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lampo-staff"))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "outside the EU/EEA" in done.stderr and "Offshore Support Ltd" in done.stderr
