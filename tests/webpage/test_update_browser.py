"""The System page's update card in Chromium: choose a bundle, watch it upload, verify and
install, see "Reboot now"; a bad bundle shows its message next to the field. At 390 px nothing
overflows the screen. Screenshots go to tests/artifacts/ (system-update-*.png)."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from conftest import Hearth, make_settings
from browser_kit import ARTIFACTS, browser, shoot, wait  # noqa: F401  (the browser fixture)
from update_support import RaucBox, make_bundle
from web_support import admin_password

pytestmark = pytest.mark.own_hearth

OVERFLOW = "return Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"


@pytest.fixture(scope="module")
def appliance(tmp_path_factory):
    root = tmp_path_factory.mktemp("rauc-browser")
    box = RaucBox(root).start()
    h = Hearth(make_settings(root / "data", update=box.settings())).start()
    yield box, h
    h.stop()
    box.stop()


def test_install_an_update_from_the_system_page(appliance, browser, tmp_path):  # noqa: F811
    box, h = appliance
    d = browser
    good = make_bundle(tmp_path / "hearth-2.0.0.raucb", "2.0.0", box.cert, box.key)
    unsigned = make_bundle(tmp_path / "unsigned.raucb", "2.0.1", None, None)
    d.get(h.web_url + "/system")
    d.find_element(By.ID, "password").send_keys(admin_password(h))
    d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(d).until(ec.presence_of_element_located((By.ID, "update-upload")))
    slots = {e.get_attribute("data-slot"): e.text for e in d.find_elements(By.CSS_SELECTOR, "#update dd[data-slot]")}
    assert "running now" in slots["A"] and "not running" in slots["B"]

    d.find_element(By.ID, "bundle").send_keys(str(unsigned))
    d.find_element(By.CSS_SELECTOR, "#update-upload button[type=submit]").click()
    error = wait(d, 30).until(ec.visibility_of_element_located((By.CSS_SELECTOR, '[data-error-for="bundle"]')))
    assert "is not signed" in error.text
    for width in (390, 1280):
        shoot(d, "system-update-refused", width)

    d.find_element(By.ID, "bundle").send_keys(str(good))
    d.find_element(By.CSS_SELECTOR, "#update-upload button[type=submit]").click()
    wait(d, 60).until(ec.visibility_of_element_located((By.ID, "update-reboot")))
    assert "2.0.0 written to slot B" in d.find_element(By.ID, "update-step").text
    d.refresh()
    assert "2.0.0" in d.find_element(By.CSS_SELECTOR, "#update dd[data-slot='B']").text
    assert d.find_element(By.ID, "update-reboot").is_displayed()
    for width in (390, 1280):
        shoot(d, "system-update", width)
        d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                          {"width": width, "height": 844, "deviceScaleFactor": 1, "mobile": width < 600})
        assert d.execute_script(OVERFLOW) <= width, f"the System page is wider than {width} px"
        d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
