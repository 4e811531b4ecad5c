"""The front desk of every daemon, as a client in any language meets it over XML-RPC."""

import http.client
import time
import xmlrpc.client

import pytest

from observatory import ended, step, wait_until
from observatory import status as status_of
from torosmanager.examples import MANUAL_DOME, MANUAL_OBSERVATION
from torosmanager.workorders import FaultCode, WorkOrderError

RECEIPT_KEYS = {"ID", "WOType", "Status", "Priority", "Message"}


def observation(order_id, **changes):
    # Sexagesimal RA is hours: '23:06:00' is 346.5°, not the manual's RA 23.1, which is
    # degrees ('01:32:24'); test_durability checks the 346.5.
    order = {"ID": order_id, "WOType": "Observation", "RA": "23:06:00", "Dec": "+13:12:00",
             "Filter": "I", "Exposure Time": 30.0, "User": "test"}
    order.update(changes)
    return order


def fault(call, order):
    with pytest.raises(xmlrpc.client.Fault) as caught:
        call(order)
    return caught.value


def wait_for_state(proxy, order_id, state, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = proxy.front_desk({"WOType": "Status", "ID": order_id})
        if status["Status"] == state:
            return status
        time.sleep(0.05)
    raise AssertionError(f"order {order_id} still {status['Status']} after {timeout} s: {status}")


class TestTheManualsExamples:
    def test_the_observation_goes_through_the_scheduler_to_the_telescope(self, running):
        receipt = running.proxy("scheduler").front_desk(MANUAL_OBSERVATION)
        assert RECEIPT_KEYS <= set(receipt)
        assert receipt["ID"] == "1" and receipt["Priority"] == 1.3
        assert receipt["Status"] == "queued"
        status = ended(running.proxy("scheduler"), "1", "done")
        states = [step["Status"] for step in status["History"]]
        assert states[:2] == ["accepted", "queued"]
        assert states.index("dispatched") < states.index("running") < states.index("done")
        at_telescope = running.proxy("telescope").front_desk({"WOType": "Status", "ID": "1"})
        assert at_telescope["Work Order"]["RA"] == 23.1
        assert at_telescope["Work Order"]["Calibration Frames"] is True

    def test_the_dome_example_goes_to_the_dome(self, running):
        receipt = running.proxy("dome").front_desk(MANUAL_DOME)
        assert receipt["ID"] == "1" and receipt["Priority"] == 2.0
        assert receipt["Status"] in ("queued", "running", "done")
        status = wait_for_state(running.proxy("dome"), "1", "done")
        assert status["Message"] == "warning light blinking"

    def test_a_client_without_allow_none_can_use_every_receipt(self, running):
        """Receipts carry no nil, which many XML-RPC libraries cannot read."""
        strict = xmlrpc.client.ServerProxy(running.url("telescope"))
        receipt = strict.front_desk(observation("strict-1"))
        status = strict.front_desk({"WOType": "Status", "ID": "strict-1"})
        assert "<nil/>" not in xmlrpc.client.dumps((receipt, status), allow_none=True)


def test_a_hand_written_xml_request_as_any_language_would_send_it(running):
    body = """<?xml version="1.0"?>
<methodCall><methodName>front_desk</methodName><params><param><value><struct>
<member><name>WOType</name><value><string>Dome</string></value></member>
<member><name>ID</name><value><int>77</int></value></member>
<member><name>Blink02</name><value><boolean>1</boolean></value></member>
</struct></value></param></params></methodCall>"""
    connection = http.client.HTTPConnection("127.0.0.1", running.config["Dome Address"]["Port"],
                                            timeout=10)
    connection.request("POST", "/RPC2", body, {"Content-Type": "text/xml"})
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Access-Control-Allow-Origin") is None
    (receipt,), _ = xmlrpc.client.loads(response.read())
    assert receipt["ID"] == "77" and receipt["Status"] in ("queued", "running", "done")


class TestReceipts:
    def test_a_missing_id_is_assigned_and_returned(self, running):
        order = observation(None)
        del order["ID"]
        receipt = running.proxy("telescope").front_desk(order)
        assert receipt["ID"]
        status = running.proxy("telescope").front_desk({"WOType": "Status", "ID": receipt["ID"]})
        assert status["Work Order"]["Datetime"].endswith("Z")

    def test_the_scheduler_assigns_a_priority_with_a_reason(self, running):
        scheduler = running.proxy("scheduler")
        receipt = scheduler.front_desk(observation("prio-1", Priority=None))
        status = scheduler.front_desk({"WOType": "Status", "ID": "prio-1"})
        assert receipt["Priority"] == 5.0 and status["Priority Reason"] == "default priority: 5"
        receipt = scheduler.front_desk(observation("prio-2", Priority=14))
        assert receipt["Priority"] == 10.0

    def test_resubmitting_the_same_order_is_idempotent(self, running):
        telescope = running.proxy("telescope")
        first = telescope.front_desk(observation("same-1"))
        second = telescope.front_desk(observation("same-1"))
        assert second["ID"] == first["ID"]
        assert "already received" in second["Message"]
        status = telescope.front_desk({"WOType": "Status", "ID": "same-1"})
        assert [step["Status"] for step in status["History"]].count("accepted") == 1

    def test_the_same_order_sent_as_another_client_writes_it_is_the_same_order(self, running):
        # A whole number as a double, a key set to None (nil) rather than left out: as a
        # client in another language may send the same order again.
        telescope = running.proxy("telescope")
        telescope.front_desk(observation("same-2", **{"Exposure Time": 30}))
        again = telescope.front_desk(observation("same-2", Priority=None,
                                                 **{"Exposure Time": 30.0}))
        assert again["ID"] == "same-2" and "already received" in again["Message"]

    def test_the_same_order_in_other_spellings_of_its_values_is_the_same_order(self, running):
        # A time without its Z, sexagesimal RA, Yes as true: the scheduler sends the telescope
        # the order as it normalised it, which the client may send again as first written.
        telescope = running.proxy("telescope")
        telescope.front_desk(observation("same-3", RA="01:32:24", **{
            "Datetime": "2026-11-21T23:00:00", "Calibration Frames": "Yes"}))
        again = telescope.front_desk(observation("same-3", RA=23.1, **{
            "Datetime": "2026-11-21T23:00:00Z", "Calibration Frames": True}))
        assert again["ID"] == "same-3" and "already received" in again["Message"]
        refusal = fault(telescope.front_desk, observation("same-3", RA=23.2))
        assert refusal.faultCode == FaultCode.CONFLICT and "'RA'" in refusal.faultString

    def test_reusing_an_id_for_a_different_order_is_refused(self, running):
        telescope = running.proxy("telescope")
        telescope.front_desk(observation("conflict-1"))
        refusal = fault(telescope.front_desk, observation("conflict-1", Filter="R"))
        assert refusal.faultCode == FaultCode.CONFLICT
        assert "'Filter'" in refusal.faultString and "new ID" in refusal.faultString


class TestRefusals:
    @pytest.mark.parametrize("changes, names", [
        ({"RA": 400}, "'RA': received 400"),
        ({"Dec": "+95:00:00"}, "'Dec': received '+95:00:00'"),
        ({"Exposure Time": -1}, "'Exposure Time': received -1"),
        ({"Number of Exposures": "five"}, "'Number of Exposures': received 'five'"),
        ({"Filter": None}, "'Filter': received None; allowed: a non-empty string"),
        ({"Colour": "red"}, "'Colour': received 'red'"),
    ])
    def test_bad_values_are_named(self, running, changes, names):
        refusal = fault(running.proxy("scheduler").front_desk, observation("bad", **changes))
        assert refusal.faultCode == FaultCode.INVALID
        assert names in refusal.faultString

    def test_an_unknown_wotype_lists_the_accepted_ones(self, running):
        refusal = fault(running.proxy("scheduler").front_desk, {"WOType": "Focus"})
        assert refusal.faultCode == FaultCode.UNKNOWN_WOTYPE
        assert "'Observation'" in refusal.faultString and "'Dome'" in refusal.faultString

    def test_the_wrong_daemon_says_which_daemon_takes_it(self, running):
        order = {"WOType": "Preprocessing", "File Location": "/tmp"}
        refusal = fault(running.proxy("telescope").front_desk, order)
        assert refusal.faultCode == FaultCode.WRONG_DAEMON
        assert f"the preprocessor daemon ({running.url('preprocessor')})" in refusal.faultString

    def test_not_a_struct(self, running):
        refusal = fault(running.proxy("dome").front_desk, ["WOType", "Dome"])
        assert refusal.faultCode == FaultCode.INVALID and "struct" in refusal.faultString

    def test_another_telescope_is_refused(self, running):
        refusal = fault(running.proxy("telescope").front_desk,
                        observation("other", **{"Telescope Name": "Macon"}))
        assert "'Telescope Name': received 'Macon'; allowed: 'CTMO'" in refusal.faultString

    def test_outputs_the_dome_does_not_have(self, running):
        refusal = fault(running.proxy("dome").front_desk, {"WOType": "Dome", "Blink09": True})
        assert "'Blink09': received True; allowed: Blink01 to Blink08" in refusal.faultString

    def test_a_file_location_outside_the_allowed_directories(self, running):
        refusal = fault(running.proxy("preprocessor").front_desk,
                        {"WOType": "Preprocessing", "File Location": "file:///etc"})
        assert "'File Location': received '/etc'; allowed: a path inside" in refusal.faultString

    def test_a_file_location_that_does_not_exist(self, running):
        missing = running.config["Telescope"]["Data Directory"] + "/20991231"
        refusal = fault(running.proxy("preprocessor").front_desk,
                        {"WOType": "Preprocessing", "File Location": missing})
        assert "nothing is there" in refusal.faultString

    def test_the_original_managers_preprocessing_request(self, running):
        import numpy as np
        from astropy.io import fits

        night = running.directory / "data" / "20261121" / "raw"
        night.mkdir(parents=True, exist_ok=True)
        frame = fits.PrimaryHDU(np.zeros((8, 8), dtype=np.uint16))
        frame.header["IMAGETYP"], frame.header["EXPTIME"] = "BIAS", 0.0
        frame.writeto(night / "bias.fits")
        receipt = running.proxy("preprocessor").front_desk(
            {"Request": "Exposure Calibration", "File Location": f"file://{night.parent}"})
        assert receipt["WOType"] == "Preprocessing"
        assert receipt["Status"] in ("queued", "running", "done", "failed")


class TestQueries:
    def test_health(self, running):
        for service in ("scheduler", "telescope", "dome", "preprocessor"):
            health = running.proxy(service).front_desk({"WOType": "Status"})
            assert health["Service"] == service
            assert health["Version"] and health["Uptime"] >= 0
            assert isinstance(health["Queue"], dict) and isinstance(health["Devices"], dict)

    def test_status_of_an_unknown_id(self, running):
        refusal = fault(running.proxy("dome").front_desk, {"WOType": "Status", "ID": "nope"})
        assert refusal.faultCode == FaultCode.NOT_FOUND and "'nope'" in refusal.faultString

    def test_cancel_an_order_that_has_not_ended(self, running):
        telescope = running.proxy("telescope")
        telescope.front_desk(observation("cancel-1", **{"Exposure Time": 3600.0}))
        receipt = telescope.front_desk({"WOType": "Cancel", "ID": "cancel-1",
                                        "User": "operator"})
        assert receipt["Status"] == "cancelled" and "operator" in receipt["Message"]
        refusal = fault(telescope.front_desk, {"WOType": "Cancel", "ID": "cancel-1"})
        assert refusal.faultCode == FaultCode.NOT_CANCELLABLE
        # Every state in an answer arrives as its value (the journal's are an enum).
        status = telescope.front_desk({"WOType": "Status", "ID": "cancel-1"})
        assert status["Status"] == status["History"][-1]["Status"] == "cancelled"
        assert telescope.front_desk({"WOType": "Status"})["Queue"]["cancelled"] >= 1

    def test_cancelling_at_the_scheduler_cancels_at_the_executor(self, running):
        scheduler, telescope = running.proxy("scheduler"), running.proxy("telescope")
        scheduler.front_desk(observation("cancel-2", **{"Exposure Time": 3600.0}))
        wait_until(lambda: step(telescope, "cancel-2").startswith("exposing"),
                   "the observation to run")
        scheduler.front_desk({"WOType": "Cancel", "ID": "cancel-2"})
        wait_for_state(telescope, "cancel-2", "cancelled")

    def test_introspection(self, running):
        proxy = running.proxy("telescope")
        assert proxy.system.listMethods() == [
            "front_desk", "system.listMethods", "system.methodHelp", "system.methodSignature",
            "system.multicall"]
        assert "work order" in proxy.system.methodHelp("front_desk")
        calls = xmlrpc.client.MultiCall(proxy)
        calls.front_desk({"WOType": "Status"})
        calls.front_desk({"WOType": "Status", "ID": "missing"})
        results = calls()
        assert results[0]["Service"] == "telescope"
        with pytest.raises(xmlrpc.client.Fault):
            results[1]

    def test_only_front_desk_is_published(self, running):
        with pytest.raises(xmlrpc.client.Fault) as refusal:
            running.proxy("dome").accept({"WOType": "Dome"})
        assert refusal.value.faultCode == FaultCode.INVALID  # the caller's mistake, no bug
        assert refusal.value.faultString == (
            "no method 'accept'; this daemon serves front_desk, system.listMethods, "
            "system.methodHelp, system.methodSignature, system.multicall")

    @pytest.mark.parametrize("params, received", [((), "0 parameters"),
                                                  (({"WOType": "Status"}, 2), "2 parameters")])
    def test_front_desk_with_the_wrong_number_of_parameters_is_refused(self, running, params,
                                                                       received):
        with pytest.raises(xmlrpc.client.Fault) as refusal:
            running.proxy("dome").front_desk(*params)
        assert refusal.value.faultCode == FaultCode.INVALID
        assert refusal.value.faultString == f"front_desk takes (work_order); received {received}"

    def test_a_multicall_entry_that_is_no_call_gets_its_own_refusal(self, running):
        answers = running.proxy("dome").system.multicall([
            {"methodName": "front_desk"},                      # no params
            "front_desk",                                      # no struct
            {"methodName": "front_desk", "params": [{"WOType": "Status"}]}])
        for answer, number in zip(answers[:2], (1, 2)):
            assert answer["faultCode"] == FaultCode.INVALID
            assert answer["faultString"].startswith(
                f"system.multicall: call {number} is no struct of methodName (text) and params")
        assert answers[2][0]["Service"] == "dome"
        assert "Traceback" not in running.log("dome")


@pytest.mark.parametrize("key, value", [("Telescope Name", "Macon"), ("Filter", "Z"),
                                        ("Exposure Time", 3601.0),
                                        ("Number of Exposures", 501)])
def test_the_scheduler_refuses_what_its_telescope_would_in_the_telescopes_words(running, key,
                                                                                   value):
    """The limits are learned from the telescope's health Status, not from the scheduler's
    configuration: an order refused at dispatch, hours later, would be lost to the night."""
    scheduler, telescope = running.proxy("scheduler"), running.proxy("telescope")
    limits = wait_until(lambda: scheduler.front_desk({"WOType": "Status"})["Telescope Limits"],
                        "the scheduler to learn the telescope's limits")
    assert limits == telescope.front_desk({"WOType": "Status"})["Limits"]
    at_scheduler = fault(scheduler.front_desk, observation(f"refused-{key}", **{key: value}))
    at_telescope = fault(telescope.front_desk, observation(f"refused-{key}", **{key: value}))
    assert at_scheduler.faultString == at_telescope.faultString
    assert at_scheduler.faultString.startswith(f"'{key}': received {value!r}; allowed:")
    assert at_scheduler.faultCode == FaultCode.INVALID


def test_the_scheduler_retries_an_absent_dome_daemon_then_says_why(make_site):
    site = make_site({"Scheduler": {"Dispatch Attempts": 3, "Dispatch Retry Interval": 0.1}})
    site.start("scheduler")  # no dome daemon
    scheduler = site.proxy("scheduler")
    scheduler.front_desk({"ID": "lonely", "WOType": "Dome", "Park": True})
    status = wait_for_state(scheduler, "lonely", "failed")
    assert "did not answer after 3 attempts" in status["Message"]
    assert site.log("scheduler").count("[WO lonely] the dome daemon did not answer") == 3


def test_an_observation_waits_while_the_telescope_daemon_is_away(make_site):
    from observatory import open_dome, settings

    site = make_site(settings(Scheduler={"Manage Dome": False}))
    site.start("dome", "scheduler")  # no telescope daemon
    open_dome(site)
    scheduler = site.proxy("scheduler")
    scheduler.front_desk(observation("patient"))
    wait_until(lambda: "the telescope daemon does not answer" in site.log("scheduler"),
               "a failed dispatch")
    patient = status_of(scheduler, "patient")   # kept, tried again later, saying why
    assert patient["Status"] == "queued"
    assert patient["Message"].startswith("waiting: the telescope daemon does not answer")


def test_every_line_about_an_order_carries_its_id(running):
    running.proxy("scheduler").front_desk(observation("traced-1"))
    ended(running.proxy("scheduler"), "traced-1", "done")
    scheduler_lines = [line for line in running.log("scheduler").splitlines()
                       if "[WO traced-1]" in line]
    telescope_lines = [line for line in running.log("telescope").splitlines()
                       if "[WO traced-1]" in line]
    assert any("accepted" in line for line in scheduler_lines)
    assert any("→ dispatched" in line for line in scheduler_lines)
    assert any("→ queued" in line for line in telescope_lines)
    assert any("→ running: exposing 1/1" in line for line in telescope_lines)
    assert any("wrote" in line for line in telescope_lines)


def test_orders_served_together_share_one_commit_and_each_gets_its_answer(tmp_path):
    """FrontDesk.front_desks, as the server calls it with the orders that came together:
    the new ones are journaled in one commit; a refused one, a resubmission in the same
    batch and a query each get their own answer, in order."""
    from torosmanager.clock import Clock
    from torosmanager.config import load_config
    from torosmanager.earth_rotation import EarthRotationTable
    from torosmanager.frontdesk import FrontDesk
    from torosmanager.journal import Journal
    from torosmanager.launcher import local_config
    from torosmanager.service import handler_class

    config = load_config(local_config(str(tmp_path)))
    clock = Clock.from_config(config)
    journal = Journal(str(tmp_path / "journal.sqlite"))
    desk = FrontDesk(handler_class("scheduler")(config, journal, clock), journal, clock,
                     config, EarthRotationTable())
    commits = []
    journal._db.set_trace_callback(lambda statement: commits.append(statement)
                                   if statement == "COMMIT" else None)
    orders = [observation("a"), observation("b"), observation("c", **{"Exposure Time": -1.0}),
              observation("a"), {"WOType": "Status"}]
    assert all(desk.serves_at_once(order) for order in orders[:4])
    assert not desk.serves_at_once(orders[4])
    first, second, refused, again, health = desk.front_desks(orders)
    assert commits == ["COMMIT"]
    assert (first["ID"], first["Status"]) == ("a", "queued")
    assert (second["ID"], second["Status"]) == ("b", "queued")
    assert isinstance(refused, xmlrpc.client.Fault) and "'Exposure Time'" in refused.faultString
    assert again["ID"] == "a" and again["Message"].startswith("already received at")
    assert health["Queue"] == {"queued": 2}
    journal.close()


def test_a_cancel_is_decided_on_the_step_the_order_is_at_when_it_is_cancelled(tmp_path):
    """The telescope does not cancel an observation whose frames are being handed to the
    preprocessor. A Cancel read the order a moment before its worker journaled that step: it is
    refused all the same, on the order as it is, and the order goes on (it was marked
    cancelled while its frames went to be calibrated)."""
    from torosmanager.clock import Clock
    from torosmanager.config import load_config
    from torosmanager.earth_rotation import EarthRotationTable
    from torosmanager.frontdesk import FrontDesk
    from torosmanager.hand_offs import HANDING
    from torosmanager.journal import CANCELLED, RUNNING, Journal
    from torosmanager.launcher import local_config
    from torosmanager.service import handler_class

    config = load_config(local_config(str(tmp_path)))
    clock = Clock.from_config(config)
    journal = Journal(str(tmp_path / "journal.sqlite"))
    desk = FrontDesk(handler_class("telescope")(config, journal, clock), journal, clock,
                     config, EarthRotationTable())
    journal.add(observation("obs"), "{}", 5.0, "requested: 5", "2026-11-10T02:00:00.000Z",
                "queued")
    journal.transition("obs", RUNNING, "exposing 1/1", "2026-11-10T02:00:01.000Z",
                       progress={"Step": "exposing 1/1"})
    read_before_the_step = journal.get

    def get_then_worker_steps(order_id):
        record = read_before_the_step(order_id)
        journal.transition(order_id, RUNNING, "handing", "2026-11-10T02:01:00.000Z",
                           only_from={RUNNING},
                           progress={"Step": f"{HANDING}1 frame(s) to the preprocessor"})
        return record

    journal.get = get_then_worker_steps
    with pytest.raises(WorkOrderError) as refused:
        desk.cancel("obs", "test")
    journal.get = read_before_the_step
    assert refused.value.code == FaultCode.NOT_CANCELLABLE
    assert "being handed to the preprocessor" in str(refused.value)
    record = journal.get("obs")
    assert record.state == RUNNING and record.progress["Step"].startswith(HANDING)
    assert CANCELLED not in [entry["Status"] for entry in journal.history("obs")]
    journal.close()
