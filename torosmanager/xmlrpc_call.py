"""Reading an XML-RPC call: what :func:`xmlrpc.client.loads` returns, in half its time.

The stdlib's unmarshaller calls back into Python for every element and every piece of text;
an Observation order's call has about sixty of them, and reading it was a sixth of the
scheduler's time per order under load (docs/benchmarks.md). Here expat builds the element
tree in C (:class:`xml.etree.ElementTree.XMLParser`) and a few lines walk it.

The walk takes only the plain forms of a call (methodCall, params, and values of the types
clients send: string, int, double, boolean, nil, struct, array). Anything else, from a
``dateTime.iso8601`` to a malformed document, is read by :func:`xmlrpc.client.loads` itself,
so that every call is read, or refused, exactly as the stdlib does. So is a large body: a tree
of tiny elements takes about twelve bytes of memory for each byte of the body, the stdlib's
values two.

Two differences from the stdlib, in both ways of reading:

* a struct that names a member twice is refused (:class:`DuplicateMember`). The stdlib keeps
  the last, so a work order with two ``Priority`` members, which no dict can send but a
  hand-written client can, would be accepted with one of them silently dropped;
* a document type declaration is refused (:class:`DoctypeRefused`) as expat meets it. No
  call needs one, and its entities let a body of under a megabyte expand to tens of megabytes,
  seconds of the parser's time (a "billion laughs").
"""

from xml.etree.ElementTree import ParseError, XMLParser
from xmlrpc.client import ExpatParser, Unmarshaller

#: Bodies larger than this are read by :func:`xmlrpc.client.loads` (the memory of a tree); a
#: work order's call is about 1.5 kB.
TREE_MAX_BYTES = 65536
#: ``<!DOCTYPE`` as a body in the encodings XML-RPC clients use has it (ASCII and its
#: supersets, UTF-16): such a body is read by :func:`_loads`, which refuses the declaration.
_DOCTYPE = tuple("<!DOCTYPE".encode(encoding) for encoding in ("ascii", "utf-16-le", "utf-16-be"))
#: The XML-RPC integer types (``i8``, ``biginteger`` and the others are extensions the
#: stdlib reads too).
_INTEGERS = frozenset(("int", "i4", "i8", "i1", "i2", "biginteger"))


class _NotPlain(Exception):
    """The call has a form the walk leaves to :func:`xmlrpc.client.loads`."""


class DuplicateMember(Exception):
    """A struct names a member twice."""

    def __init__(self, name):
        super().__init__(f"a struct names the member {name!r} twice; each may appear once")


def _end_struct(unmarshaller: Unmarshaller, data: str) -> None:
    """The stdlib's end of a struct, refusing one that names a member twice."""
    seen = set()
    for name in unmarshaller._stack[unmarshaller._marks[-1]::2]:  # name, value, name, ...
        if name in seen:
            raise DuplicateMember(name)
        seen.add(name)
    Unmarshaller.end_struct(unmarshaller, data)


class DoctypeRefused(Exception):
    """The body declares a document type."""

    def __init__(self):
        super().__init__("a document type declaration (<!DOCTYPE>) is not allowed in an "
                         "XML-RPC call")


def _refuse_doctype(*_):
    raise DoctypeRefused


class _Unmarshaller(Unmarshaller):
    """The stdlib's unmarshaller, refusing a struct that names a member twice."""

    dispatch = dict(Unmarshaller.dispatch, struct=_end_struct)


def _loads(body):
    """:func:`xmlrpc.client.loads` with ``use_builtin_types=True``, by :class:`_Unmarshaller`."""
    unmarshaller = _Unmarshaller(use_builtin_types=True)
    parser = ExpatParser(unmarshaller)
    # (The stdlib's parser keeps its expat parser here; raising in a handler stops expat at once.)
    parser._parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.feed(body)
    parser.close()
    return unmarshaller.close(), unmarshaller.getmethodname()


def parse_call(body):
    """The parameters and method name of an XML-RPC call.

    Parameters
    ----------
    body : bytes
        The request's body: a ``methodCall`` document.

    Returns
    -------
    (tuple, str)
        As :func:`xmlrpc.client.loads` with ``use_builtin_types=True`` returns them, and with
        the same exceptions for a body it cannot read, :class:`DuplicateMember` and
        :class:`DoctypeRefused`.
    """
    if len(body) <= TREE_MAX_BYTES and not any(doctype in body for doctype in _DOCTYPE):
        try:
            parser = XMLParser()
            parser.feed(body)
            return _call(parser.close())
        except (ParseError, _NotPlain, ValueError, TypeError, RecursionError):
            pass  # read again below, as the stdlib reads it, or refused as it refuses it
    return _loads(body)


def _call(call):
    """``(params, method)`` of a ``methodCall`` element."""
    if (call.tag != "methodCall" or len(call) != 2 or call[0].tag != "methodName"
            or len(call[0]) or call[1].tag != "params"):
        raise _NotPlain
    return tuple(_param(param) for param in call[1]), call[0].text or ""


def _param(param):
    if param.tag != "param" or len(param) != 1:
        raise _NotPlain
    return _value(param[0])


def _value(element):
    """The Python value of a ``<value>`` element."""
    if element.tag != "value" or len(element) > 1:
        raise _NotPlain
    if not len(element):
        return element.text or ""  # a value without a type is a string
    if element.text is not None and element.text.strip():
        raise _NotPlain  # text beside a typed value: left to the stdlib's rules
    typed = element[0]
    kind, text = typed.tag, typed.text
    if kind == "struct":
        members = {}
        for member in typed:
            name = _name(member)
            if name in members:
                raise DuplicateMember(name)
            members[name] = _value(member[1])
        return members
    if kind == "array":
        if len(typed) != 1 or typed[0].tag != "data":
            raise _NotPlain
        return [_value(item) for item in typed[0]]
    if len(typed):
        raise _NotPlain
    if kind == "string":
        return text or ""
    if kind == "double":
        return float(text)
    if kind in _INTEGERS:
        return int(text)
    if kind == "boolean" and text in ("0", "1"):
        return text == "1"
    if kind == "nil":
        return None
    raise _NotPlain


def _name(member):
    if member.tag != "member" or len(member) != 2 or member[0].tag != "name" or len(member[0]):
        raise _NotPlain
    return member[0].text or ""
