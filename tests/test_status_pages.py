"""Each daemon's status page: GET / on its port, read by plain HTTP and by headless Chromium."""

import http.client
import json
import shutil
import struct
import subprocess

import pytest

from observatory import ended, open_dome, settings, wait_until

#: Seconds Chromium may take to render a page.
BROWSER_TIMEOUT = 90
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    """A site where the telescope has taken a frame."""
    from conftest import Site
    site = Site(tmp_path_factory.mktemp("pages"), settings()).start("dome", "telescope",
                                                                     "scheduler")
    open_dome(site)
    site.proxy("telescope").front_desk({"ID": "paged", "WOType": "Observation", "RA": 23.1,
                                        "Dec": 13.2, "Filter": "V", "Exposure Time": 30.0,
                                        "User": "page test"})
    ended(site.proxy("telescope"), "paged", "done")
    yield site
    site.stop()


def get(site, service, path):
    port = site.config[f"{service.capitalize()} Address"]["Port"]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.getheader("Content-Type"), response.read()


@pytest.mark.parametrize("service", ["scheduler", "telescope", "dome"])
def test_every_daemon_serves_its_page_beside_xml_rpc(observed, service):
    status, content_type, body = get(observed, service, "/")
    assert status == 200 and content_type.startswith("text/html")
    page = body.decode()
    assert f"TOROS Manager — {service} daemon" in page
    assert "id='health'" in page and "id='log'" in page
    assert observed.proxy(service).front_desk({"WOType": "Status"})["Service"] == service


def test_the_telescope_page_shows_its_latest_frame_and_header(observed):
    page = get(observed, "telescope", "/")[2].decode()
    assert "<img id='preview' src='/latest.png'" in page
    assert "EXPTIME" in page and "page test" in page  # the header, with the order's User
    status, content_type, png = get(observed, "telescope", "/latest.png")
    assert status == 200 and content_type == "image/png"
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (256, 256)  # the simulated CCD of these tests


def test_the_scheduler_page_shows_its_plan_and_what_it_left_out(make_site):
    site = make_site(settings()).start("scheduler")
    scheduler = site.proxy("scheduler")
    # "never-up": in November, up in daylight only.
    for order_id, ra, dec in (("high", 23.1, 13.2), ("never-up", 224.0, -17.0)):
        scheduler.front_desk({"ID": order_id, "WOType": "Observation", "RA": ra, "Dec": dec,
                              "Filter": "V", "Exposure Time": 30.0, "User": "page test"})

    def plan_shown():
        page = get(site, "scheduler", "/")[2].decode()
        return page.split("<h2>Plan</h2>", 1)[1].split("<h2>", 1)[0]

    wait_until(lambda: "high" in plan_shown() and "never-up" in plan_shown(),
               "the plan to be shown")
    plan = plan_shown()
    assert "(Sun below -18°); plan made" in plan
    planned = plan.split("<table id='plan'>", 1)[1].split("</table>", 1)[0]
    assert "<td>high</td>" in planned and "never-up" not in planned
    left_out = plan.split("<table id='not-planned'>", 1)[1].split("</table>", 1)[0]
    assert "<td>never-up</td><td>never below airmass" in left_out, left_out


def test_each_order_has_a_page_of_its_own(observed):
    """Linked from the orders table: the order's state, work order, progress and history, and
    its Status as JSON."""
    assert "<td><a href='/orders/paged.html'>paged</a></td>" in get(observed, "telescope",
                                                                     "/")[2].decode()
    status, content_type, body = get(observed, "telescope", "/orders/paged.html")
    assert status == 200 and content_type.startswith("text/html")
    page = body.decode()
    assert "<h1>Observation paged: <span class='state-done'>done</span></h1>" in page
    answer = observed.proxy("telescope").front_desk({"WOType": "Status", "ID": "paged"})
    (frame,) = answer["Progress"]["Files"]
    assert frame in page.split("<h2>Progress</h2>", 1)[1]
    history = page.split("<table id='history'>", 1)[1].split("</table>", 1)[0]
    assert "<td>running</td><td>exposing 1/1</td>" in history
    status, content_type, body = get(observed, "telescope", "/orders/paged.json")
    assert status == 200 and content_type == "application/json"
    assert json.loads(body) == answer


def test_an_order_page_for_any_id_and_none_for_an_unknown_one(observed):
    dome = observed.proxy("dome")
    dome.front_desk({"ID": "blink 1/2?", "WOType": "Dome", "Blink02": True})
    ended(dome, "blink 1/2?", "done")
    link = "<a href='/orders/blink%201%2F2%3F.html'>blink 1/2?</a>"
    assert link in get(observed, "dome", "/")[2].decode()
    status, _, body = get(observed, "dome", "/orders/blink%201%2F2%3F.html")
    assert status == 200 and "<h1>Dome blink 1/2?: " in body.decode()
    assert get(observed, "dome", "/orders/nobody.html")[0] == 404
    assert get(observed, "dome", "/orders/blink%201%2F2%3F.txt")[0] == 404


def test_other_paths_are_not_found(observed):
    assert get(observed, "dome", "/etc/passwd")[0] == 404


def test_a_page_needs_the_credentials_when_the_daemon_does(make_site):
    site = make_site({"Server": {"Users": {"toros": "secret"}}}).start("dome")
    assert get(site, "dome", "/")[0] == 401


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (Debian package chromium): "
                                             "apt-get install chromium")
def test_the_telescope_page_in_headless_chromium(observed, tmp_path):
    url = observed.url("telescope")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True,
                         timeout=BROWSER_TIMEOUT)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = dom.stdout
    assert "TOROS Manager — telescope daemon" in rendered
    assert 'id="preview"' in rendered and 'id="fits-header"' in rendered
    assert ">paged<" in rendered  # the order in the orders table
    screenshot = tmp_path / "page.png"
    shot = subprocess.run(flags + [f"--screenshot={screenshot}", "--window-size=1200,1600",
                                   url], capture_output=True, text=True,
                          timeout=BROWSER_TIMEOUT)
    assert shot.returncode == 0 and screenshot.read_bytes().startswith(b"\x89PNG")


def test_the_telescope_page_is_served_once_its_latest_frame_is_moved(make_site):
    """An operator archives the night: the whole telescope page, and its preview, answered
    500 (an error reading the frame) until the next frame was written; a frame cut short made
    the preview answer 500."""
    site = make_site(settings()).start("dome", "telescope")
    site.proxy("dome").front_desk({"WOType": "Heartbeat", "User": "scheduler"})
    open_dome(site)
    telescope = site.proxy("telescope")
    telescope.front_desk({"ID": "moved", "WOType": "Observation", "RA": 23.1, "Dec": 13.2,
                          "Filter": "V", "Exposure Time": 30.0, "User": "page test"})
    [frame] = ended(telescope, "moved", "done")["Progress"]["Files"]
    # Cut short first (a copy under way): the header reads, the pixels do not.
    with open(frame, "r+b") as stream:
        stream.truncate(2880 * 2)
    status, _, body = get(site, "telescope", "/")
    assert status == 200 and "EXPTIME" in body.decode()
    assert get(site, "telescope", "/latest.png")[0] == 404
    shutil.move(frame, site.directory / "archived.fits")
    status, content_type, body = get(site, "telescope", "/")
    assert status == 200
    assert "no longer readable" in body.decode() and "/latest.png" not in body.decode()
    assert get(site, "telescope", "/latest.png")[0] == 404
