"""iSCSI parsers on real captured outputs and the real iscsiadm, and the pure verdict."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from one_hooks.errors import NodeError
from one_hooks.node import iscsi
from one_hooks.node.iscsi import Disk, Session, Status, Verdict, evaluate
from one_hooks.node.runner import Runner
from tests.iscsi_flat import parse_session_flat

DATA = Path(__file__).parent / "data" / "iscsi"
HEALTHY_IQN = "iqn.1992-04.com.emc:cx.apm00191923511.a4"
REAL_ISCSIADM = "/usr/sbin/iscsiadm"


def capture(name: str) -> str:
    """A fixture without its '#' header lines (real output has none)."""
    return "".join(line for line in (DATA / name).read_text().splitlines(True) if not line.startswith("#"))


def section(name: str, start: str) -> str:
    """The lines of a commented fixture between the header starting ``start`` and the next '#' line."""
    lines = (DATA / name).read_text().splitlines(True)
    begin = next(i for i, line in enumerate(lines) if line.startswith(start)) + 1
    out = []
    for line in lines[begin:]:
        if line.startswith("#"):
            break
        out.append(line)
    return "".join(out)


def healthy(target: str = "iqn.t:1", portal: str = "10.0.0.1:3260", sid: int = 1) -> Session:
    return Session(target, portal, sid, 1, "LOGGED IN", "LOGGED_IN", "NO CHANGE", (Disk("sdb", "running"),))


# --- parsers on every fixture ---------------------------------------------------


def test_p3_healthy_capture_parses_every_field() -> None:
    [session] = iscsi.parse_session_detail(capture("04-session-P3-logged-in-healthy.txt"))
    assert session == Session(HEALTHY_IQN, "10.1.53.160:3260", 1, 1, "LOGGED IN", "LOGGED_IN",
                              "NO CHANGE", (Disk("sdb", "running"),), "tcp")
    assert session.problems() == []


def test_free_session_under_a_running_scsi_host_is_broken() -> None:
    text = capture("05-session-P3-transport-wait-FREE-reopen.txt")
    assert "State: running" in text  # the SCSI host line claims running...
    [session] = iscsi.parse_session_detail(text)
    assert (session.target, session.portal, session.sid) == ("", "10.8.100.6:3260", 806)
    assert (session.session_state, session.connection_state, session.iscsid_state) == (
        "FREE", "TRANSPORT WAIT", "REOPEN")
    assert session.disks == ()
    verdict = evaluate([session], None, [], True, None, None, host="n1")
    assert verdict.status is Status.BROKEN  # ...and proves nothing
    [problem] = verdict.problems
    assert "10.8.100.6:3260" in problem and "SID 806" in problem and "FREE" in problem
    assert "TRANSPORT WAIT" in problem and "no disk attached" in problem


def test_failed_session_names_target_and_portal() -> None:
    [session] = iscsi.parse_session_detail(capture("06-session-P1-FAILED-format-derived.txt"))
    assert session.disks is None  # -P 1 lists no devices: not held against it
    records = iscsi.parse_node_records("192.0.2.10:3260,1 iqn.2000-01.example:tgt0\n")
    verdict = evaluate([session], records, [], True, None, None)
    assert verdict.status is Status.BROKEN
    assert verdict.problems == (
        "target iqn.2000-01.example:tgt0 at 192.0.2.10:3260 (SID 3): "
        "session state FAILED, connection state TRANSPORT WAIT",)
    assert [(t.target, t.ok) for t in verdict.targets] == [("iqn.2000-01.example:tgt0", False)]


def test_flat_session_listing_parses_but_cannot_prove_health() -> None:
    sessions = parse_session_flat(capture("02-session-flat-current.txt"))
    assert [(s.sid, s.portal, s.transport) for s in sessions] == [
        (1, "truenas.[REDACTED]:3260", "tcp"), (2, "truenas.[REDACTED]:3260", "tcp"),
        (3, "truenas.[REDACTED]:3260", "tcp"), (1, "192.168.121.250:3260", "tcp")]
    assert sessions[3].target == "iqn.2010-10.org.openstack:volume-"
    assert sessions[0].target.endswith("66d4755c94e9-main-k8s")
    verdict = evaluate(sessions[3:], None, ["iqn.2010-10.org.openstack:volume-"], False, None, None)
    assert verdict.status is Status.BROKEN
    assert "session state not reported" in verdict.problems[0]


def test_flat_listing_without_flash_suffix_older_format() -> None:
    [session] = parse_session_flat("tcp: [7] [fd00::10]:3260,2 iqn.2000-01.example:old\n")
    assert (session.sid, session.portal, session.tpgt, session.target) == (
        7, "[fd00::10]:3260", 2, "iqn.2000-01.example:old")


def test_no_active_sessions_fixture_is_an_empty_answer() -> None:
    text = (DATA / "07-no-active-sessions.txt").read_text()
    stderr = next(line for line in text.splitlines() if not line.startswith("#"))
    assert iscsi.no_objects(21, stderr + "\n")
    assert not iscsi.no_objects(1, stderr)
    assert not iscsi.no_objects(21, "iscsiadm: Could not execute operation on all sessions")


def test_real_iscsiadm_answers_no_active_sessions_with_exit_21() -> None:
    if not os.access(REAL_ISCSIADM, os.X_OK):
        pytest.skip("needs the Debian open-iscsi package (/usr/sbin/iscsiadm)")
    result = Runner(timeout=30).run([REAL_ISCSIADM, "-m", "session"], ok_codes=(0, 21))
    if result.returncode == 0:
        pytest.skip("this machine has live iSCSI sessions: the 'no sessions' answer cannot be observed")
    assert result.stdout == ""
    assert iscsi.no_objects(result.returncode, result.stderr)
    verdict = evaluate([], [], [], True, None, None, host="here")
    assert verdict.status is Status.HEALTHY
    assert any("no iSCSI session" in n for n in verdict.notes)


def test_real_iscsiadm_answers_no_records_with_exit_21() -> None:
    if not os.access(REAL_ISCSIADM, os.X_OK):
        pytest.skip("needs the Debian open-iscsi package (/usr/sbin/iscsiadm)")
    result = Runner(timeout=30).run([REAL_ISCSIADM, "-m", "node"], ok_codes=(0, 21))
    if result.returncode == 0:
        pytest.skip("this machine has iSCSI node records configured")
    assert iscsi.no_objects(result.returncode, result.stderr)


def test_node_records_including_ipv6() -> None:
    text = capture("08-node-flat.txt") + "[fd00::10]:3260,1 iqn.2000-01.example:tgt0\n"
    assert iscsi.parse_node_records(text) == [
        iscsi.NodeRecord("192.168.121.250:3260", 1, "iqn.2010-10.org.openstack:volume"),
        iscsi.NodeRecord("[fd00::10]:3260", 1, "iqn.2000-01.example:tgt0")]


def test_multipath_paths_healthy_faulty_and_unchecked() -> None:
    name = "09-multipath-ll.txt"
    good = iscsi.parse_multipath(section(name, "# HEALTHY"))
    assert [(p.map_name, p.device) for p in good] == [("36006016040203100d2fba8d4190de711", d)
                                                      for d in ("sdg", "sdc", "sds", "sdu")]
    assert all(p.healthy() for p in good)
    faulty = iscsi.parse_multipath(section(name, "# FAILED PATHS"))
    assert [(p.device, p.dm_state, p.checker_state) for p in faulty][0] == ("sdaq", "failed", "faulty")
    assert len(faulty) == 4 and not any(p.healthy() for p in faulty)
    [unchecked] = iscsi.parse_multipath(section(name, "# `multipath -l`"))
    assert unchecked.checker_state == "undef" and not unchecked.healthy()
    assert evaluate([], [], [], True, None, good).status is Status.HEALTHY
    verdict = evaluate([], [], [], True, None, good + faulty)
    assert verdict.status is Status.BROKEN and len(verdict.problems) == 4
    assert "sdaq (6:0:4:13): failed faulty running" in verdict.problems[0]


def test_multipath_two_word_checker_state() -> None:
    [path] = iscsi.parse_multipath("mpatha (36001) dm-0 LIO,disk\n  `- 3:0:0:1 sdd 8:48 active i/o pending running\n")
    assert (path.map_name, path.checker_state, path.device_state) == ("mpatha", "i/o pending", "running")


def test_by_path_names_from_find_and_ls() -> None:
    text = capture("10-dev-disk-by-path.txt")
    links = [link for link in iscsi.parse_by_path(text) if link.path.startswith("/dev/")]
    assert links == [iscsi.ByPathLink(
        "/dev/disk/by-path/ip-spitfire.storage.235.tdude.co:3260-iscsi-iqn.2005-10.org.freenas.ctl:"
        "csi-pvc-bcb4379e6dc34137-cluster-lun-0", "spitfire.storage.235.tdude.co:3260",
        "iqn.2005-10.org.freenas.ctl:csi-pvc-bcb4379e6dc34137-cluster", 0)]
    ls = ("total 0\nlrwxrwxrwx 1 root root 9 May  1 10:00 ip-10.0.0.5:3260-iscsi-iqn.2000-01.x:y-lun-1 -> ../../sdc\n"
          "lrwxrwxrwx 1 root root 9 May  1 10:00 pci-0000:00:1f.2-ata-1 -> ../../sda\n"
          "lrwxrwxrwx 1 root root 10 May  1 10:00 ip-10.0.0.5:3260-iscsi-iqn.2000-01.x:y-lun-1-part1 -> ../../sdc1\n")
    parsed = iscsi.parse_by_path(ls)
    assert [(p.portal, p.target, p.lun) for p in parsed] == [("10.0.0.5:3260", "iqn.2000-01.x:y", 1)] * 2
    verdict = evaluate([], [], [], True, parsed[:1], None)
    assert verdict.status is Status.BROKEN and "dangling link ip-10.0.0.5:3260" in verdict.problems[0]


@pytest.mark.parametrize("text", [
    "<html><body>502 Bad Gateway</body></html>\n",
    "tcp: [1] 10.0.0.1:3260,1 iqn.x:y (non-flash)\n",     # the flat listing is not a -P listing
    "Target: iqn.x:y (non-flash)\n\tCurrent Portal: 10.0.0.1:3260,1\n\t\tSID: 1\n",  # no state line
    "Target: iqn.x:y (non-flash)\n\tCurrent Portal: nowhere\n",
])
def test_unparsable_detail_listing_raises(text: str) -> None:
    with pytest.raises(NodeError):
        iscsi.parse_session_detail(text)


@pytest.mark.parametrize("parser", [parse_session_flat, iscsi.parse_node_records])
def test_unparsable_flat_listings_raise(parser) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NodeError):
        parser("iscsiadm: invalid option -- 'x'\nUsage: iscsiadm ...\n")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_parsers_raise_only_node_error_on_any_text(text: str) -> None:
    for parser in (iscsi.parse_session_detail, parse_session_flat, iscsi.parse_node_records):
        try:
            parser(text)
        except NodeError:
            pass
    iscsi.parse_multipath(text)
    iscsi.parse_by_path(text)


# --- the verdict ------------------------------------------------------------------


def test_required_target_without_session_is_named() -> None:
    verdict = evaluate([healthy("iqn.other:1")], [], ["iqn.needed:lun"], True, None, None, host="n7")
    assert verdict.status is Status.BROKEN
    assert verdict.problems == ("target iqn.needed:lun: no session",)
    assert {(t.target, t.ok) for t in verdict.targets} == {("iqn.needed:lun", False), ("iqn.other:1", True)}


def test_node_record_needs_a_session_at_its_portal() -> None:
    records = iscsi.parse_node_records("10.0.0.1:3260,1 iqn.t:1\n10.0.0.2:3260,1 iqn.t:1\n")
    verdict = evaluate([healthy("iqn.t:1", "10.0.0.1:3260")], records, [], True, None, None)
    assert verdict.problems == ("target iqn.t:1 at 10.0.0.2:3260: no session",)
    assert evaluate([healthy("iqn.t:1", "10.0.0.1:3260")], records, [], False, None, None).healthy


def test_required_target_is_met_by_one_healthy_portal() -> None:
    bad = Session("iqn.t:1", "10.0.0.2:3260", 2, 1, "TRANSPORT WAIT", "FAILED", "REOPEN", ())
    verdict = evaluate([healthy("iqn.t:1"), bad], None, ["iqn.t:1"], False, None, None)
    assert verdict.healthy


def test_disk_not_running_breaks_a_logged_in_session() -> None:
    session = Session("iqn.t:1", "10.0.0.1:3260", 1, 1, "LOGGED IN", "LOGGED_IN", "NO CHANGE",
                      (Disk("sdb", "running"), Disk("sdc", "blocked")))
    verdict = evaluate([session], None, ["iqn.t:1"], False, None, None)
    assert verdict.status is Status.BROKEN and verdict.problems[0].endswith("disk sdc blocked")


def test_nothing_expected_nothing_there_is_healthy_with_a_note() -> None:
    verdict = evaluate([], [], [], True, [], [])
    assert verdict.healthy and verdict.problems == ()
    assert "no iSCSI session on this host and none expected" in verdict.notes


def test_verdict_round_trips_through_its_dict() -> None:
    verdict = evaluate([healthy()], None, ["iqn.t:1", "iqn.gone:2"], False, None, None, host="h", checked_at=5.5)
    assert Verdict.from_dict(verdict.to_dict()) == verdict
    assert verdict.to_dict()["status"] == "BROKEN"


STATES = st.sampled_from(["LOGGED_IN", "FAILED", "FREE", ""])
CONNS = st.sampled_from(["LOGGED IN", "TRANSPORT WAIT", "FAILED", ""])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(STATES, CONNS, st.sampled_from(["running", "blocked", "offline"])), max_size=5))
def test_without_expectations_healthy_exactly_when_every_session_is(states) -> None:  # type: ignore[no-untyped-def]
    sessions = [Session(f"iqn.t:{i}", "10.0.0.1:3260", i, 1, conn, state, "", (Disk("sdb", disk),))
                for i, (state, conn, disk) in enumerate(states)]
    verdict = evaluate(sessions, None, [], False, None, None)
    every_good = all(s == "LOGGED_IN" and c == "LOGGED IN" and d == "running" for s, c, d in states)
    assert verdict.healthy == every_good
    assert len(verdict.problems) == sum(1 for s in sessions if s.problems())
