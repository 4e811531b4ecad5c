"""The server's reading of an XML-RPC call is the stdlib's, value for value and error for error."""

import xmlrpc.client
from datetime import datetime

import pytest

from torosmanager.xmlrpc_call import TREE_MAX_BYTES, DoctypeRefused, DuplicateMember, parse_call


def stdlib(body):
    return xmlrpc.client.loads(body, use_builtin_types=True)


def call(values, text=""):
    """A methodCall whose single parameter is *values* as the stdlib's client sends it, or,
    given *text*, the parameter's value element written by hand."""
    if text:
        return (b"<?xml version='1.0'?><methodCall><methodName>front_desk</methodName>"
                b"<params><param>" + text.encode() + b"</param></params></methodCall>")
    return xmlrpc.client.dumps((values,), "front_desk", allow_none=True).encode()


ORDER = {"ID": "M31-V-01", "WOType": "Observation", "RA": 10.684708, "Dec": 41.26875,
         "Filter": "V", "Exposure Time": 60.0, "Number of Exposures": 3, "Calibrate": True,
         "Comment": "<b>&amp; ünïcödé ☄</b>", "Empty": "", "Nothing": None,
         "Targets": [{"Name": "a", "Weights": [1, 2.5, False]}, [], {}], "Negative": -7}


@pytest.mark.parametrize("values", [ORDER, "text", 0, -1.5e-300, True, None, [], {}, [[[]]],
                                    {"": ""}, {"a": {"b": {"c": [1, "2", 3.0]}}}],
                         ids=repr)
def test_what_the_stdlib_client_sends_is_read_as_the_stdlib_reads_it(values):
    body = call(values)
    assert parse_call(body) == stdlib(body)
    assert type(parse_call(body)[0][0]) is type(values)


@pytest.mark.parametrize("text", [
    "<value>untyped text</value>",                              # a value without a type
    "<value>  </value>", "<value/>", "<value><string/></value>",
    "<value>\n  <int> 42 </int>\n</value>",                        # whitespace around
    "<value><i8>9007199254740993</i8></value>", "<value><i4>-3</i4></value>",
    "<value><double> 2.5 </double></value>",
    "<value><string><![CDATA[<not a tag>]]></string></value>",
    "<value><string>a<!-- a comment -->b</string></value>",
    "<value><string>&#x2604; &lt;&gt;</string></value>",
    "<value><struct><member><name/><value/></member></struct></value>",
    "<value><array><data/></array></value>",
    "<value><nil/></value>",
    # forms left to the stdlib, read all the same
    "<value><dateTime.iso8601>20261201T21:00:00</dateTime.iso8601></value>",
    "<value><base64>aGVsbG8=</base64></value>",
    "<value><ex:nil xmlns:ex='http://ws.apache.org/xmlrpc/namespaces/extensions'/></value>",
    "<value><ex:nil/></value>",                                  # a prefix never declared
    "<value>text<string>typed</string></value>",
    "<value><struct><member><value><int>1</int></value><name>a</name></member></struct></value>",
    "<value><struct><member><name>a</name><value><int>1</int></value>"
    "<unknown/></member></struct></value>",
])
def test_a_hand_written_value_is_read_as_the_stdlib_reads_it(text):
    body = call(None, text)
    assert parse_call(body) == stdlib(body)


def test_forms_left_to_the_stdlib_keep_their_stdlib_types():
    (value,), _ = parse_call(call(None, "<value><dateTime.iso8601>20261201T21:00:00"
                                        "</dateTime.iso8601></value>"))
    assert value == datetime(2026, 12, 1, 21)
    (value,), _ = parse_call(call(None, "<value><base64>aGVsbG8=</base64></value>"))
    assert value == b"hello"


@pytest.mark.parametrize("body", [
    b"<methodCall><methodName>m</methodName><params/></methodCall>",
    b"<methodCall><methodName> spaced </methodName><params/></methodCall>",
    b"<methodCall><methodName>m</methodName></methodCall>",      # no params at all
    b"<methodCall><params/><methodName>m</methodName></methodCall>",
    b"<?xml version='1.0' encoding='iso-8859-1'?><methodCall><methodName>m</methodName>"
    b"<params><param><value>caf\xe9</value></param></params></methodCall>",
    xmlrpc.client.dumps((1, "two", [3]), "system.multicall").encode(),
], ids=range(6))
def test_the_method_and_several_params_are_read_as_the_stdlib_reads_them(body):
    assert parse_call(body) == stdlib(body)


@pytest.mark.parametrize("body", [
    b"", b"not xml", b"<methodCall><methodName>m</methodName>",  # not well formed
    b"<methodCall/>",                                          # neither method nor params
    b"<methodCall><methodName>m</methodName><params><param><value><boolean>yes</boolean>"
    b"</value></param></params></methodCall>",
    b"<methodCall><methodName>m</methodName><params><param><value><int>1.5</int>"
    b"</value></param></params></methodCall>",
    b"<methodCall><methodName>m</methodName><params><param><value><double/>"
    b"</value></param></params></methodCall>",
    b"<methodCall><methodName>m</methodName><params><param><value><bogus/>"
    b"</value></param></params></methodCall>",
], ids=range(8))
def test_what_the_stdlib_refuses_is_refused_with_its_exception(body):
    with pytest.raises(Exception) as expected:
        stdlib(body)
    with pytest.raises(type(expected.value)) as raised:
        parse_call(body)
    assert str(raised.value) == str(expected.value)


TWICE = ("<value><struct><member><name>Priority</name><value><int>1</int></value></member>"
         "<member><name>Priority</name><value><int>9</int></value></member>{}</struct></value>")


@pytest.mark.parametrize("text", [
    TWICE.format(""),
    # read by the stdlib's reader: a form the walk leaves to it, and a body too large for it
    TWICE.format("<member><name>Datetime</name><value><dateTime.iso8601>20261201T21:00:00"
                 "</dateTime.iso8601></value></member>"),
    TWICE.format("<member><name>Comment</name><value>" + "x" * TREE_MAX_BYTES
                 + "</value></member>"),
    "<value><array><data>" + TWICE.format("") + "</data></array></value>",
], ids=["walked", "dateTime", "large", "nested"])
def test_a_struct_naming_a_member_twice_is_refused(text):
    """Unlike the stdlib, which keeps the last: an order with two Priority members, sent by a
    hand-written client, was accepted with one of them silently dropped."""
    assert stdlib(call(None, text))  # read by the stdlib, one Priority dropped
    with pytest.raises(DuplicateMember, match="names the member 'Priority' twice"):
        parse_call(call(None, text))


def entity_expansion(levels):
    """A call of a few hundred bytes whose internal entities expand to 10**levels values."""
    entities = "<!ENTITY a0 '<value/>'>" + "".join(
        f"<!ENTITY a{level} '" + f"&a{level - 1};" * 10 + "'>" for level in range(1, levels + 1))
    return (f"<?xml version='1.0'?><!DOCTYPE methodCall [{entities}]><methodCall><methodName>"
            f"front_desk</methodName><params><param><value><array><data>&a{levels};</data>"
            "</array></value></param></params></methodCall>")


@pytest.mark.parametrize("body", [
    entity_expansion(7).encode(),  # 10 million values: seconds of the stdlib's reader
    entity_expansion(7).encode() + b"<!--" + b"x" * TREE_MAX_BYTES + b"-->",  # a large body
    "<?xml version='1.0' encoding='utf-16'?><!DOCTYPE methodCall>".encode("utf-16")
    + call({"ID": "x"})[len(b"<?xml version='1.0'?>"):].decode().encode("utf-16-le"),
    call({"ID": "x"}).replace(b"<methodCall>", b"<!DOCTYPE methodCall><methodCall>"),
], ids=["entities", "large", "utf-16", "no-entities"])
def test_a_document_type_declaration_is_refused(body):
    """The stdlib reads one, and expands its entities: a call of under a megabyte held a
    daemon's front desk, which answers everyone, for 5 to 12 s."""
    with pytest.raises(DoctypeRefused, match=r"\(<!DOCTYPE>\) is not allowed"):
        parse_call(body)


def test_the_words_of_a_doctype_in_a_value_are_text():
    written = "<value><string><![CDATA[<!DOCTYPE html>]]></string></value>"
    assert parse_call(call(None, written)) == (("<!DOCTYPE html>",), "front_desk")
    assert parse_call(call("<!DOCTYPE html>")) == (("<!DOCTYPE html>",), "front_desk")


def test_deep_nesting_is_read_as_the_stdlib_reads_it():
    deep = 1200  # deeper than Python's recursion limit allows a recursive walk
    text = "<value><array><data>" * deep + "<value><int>1</int></value>" + \
        "</data></array></value>" * deep
    body = call(None, text)
    assert len(body) <= TREE_MAX_BYTES  # (so that the walk tries it)
    (value,), method = parse_call(body)
    assert method == "front_desk"
    for _ in range(deep):  # (unwrapped in a loop: comparing whole would recurse as deep)
        assert isinstance(value, list) and len(value) == 1
        (value,) = value
    assert value == 1


def test_a_plain_call_is_read_without_the_stdlibs_slower_reader(monkeypatch):
    """The point of the module: an order's call is read by the walk, not handed over."""
    def refuse(*_):
        raise AssertionError("read by xmlrpc.client.loads")

    monkeypatch.setattr("torosmanager.xmlrpc_call._loads", refuse)
    assert parse_call(call(ORDER)) == stdlib(call(ORDER))


def test_a_large_body_is_read_by_the_stdlib_whose_values_take_less_memory(monkeypatch):
    read = []
    monkeypatch.setattr("torosmanager.xmlrpc_call._loads",
                        lambda body: read.append(body) or stdlib(body))
    small = call(["x"] * 100)
    large = call(["x"] * (TREE_MAX_BYTES // 20))  # ~30 bytes a value
    assert len(small) <= TREE_MAX_BYTES < len(large)
    assert parse_call(small) == stdlib(small) and read == []
    assert parse_call(large) == stdlib(large) and read == [large]
