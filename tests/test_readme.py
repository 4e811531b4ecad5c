"""The README's curl examples, posted as written to a real scheduler."""

import http.client
import pathlib
import re
import xmlrpc.client
from urllib.parse import urlsplit

from observatory import settings

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
#: A curl command of the README: its URL and the body after --data, in single quotes.
CURL = re.compile(r"curl -s (?P<url>\S+) -H 'Content-Type: text/xml' --data '(?P<body>.*?)'\n",
                  re.DOTALL)
#: The address the README's examples use.
README_ADDRESS = "http://127.0.0.1:8010"


def test_the_readmes_curl_examples_work(make_site):
    examples = CURL.findall(README.read_text(encoding="utf-8"))
    assert len(examples) >= 2, "the README shows a Status and an Observation with curl"
    site = make_site(settings(Scheduler={"Manage Dome": False})).start("scheduler")
    scheduler = urlsplit(site.url("scheduler"))
    answers = []
    for url, body in examples:
        assert url.startswith(README_ADDRESS)
        connection = http.client.HTTPConnection(scheduler.hostname, scheduler.port, timeout=30)
        try:
            connection.request("POST", urlsplit(url).path, body.encode(),
                               {"Content-Type": "text/xml"})
            answer = connection.getresponse()
            assert answer.status == 200
            answers.append(xmlrpc.client.loads(answer.read())[0][0])
        finally:
            connection.close()
    assert answers[0]["Service"] == "scheduler"  # the Status: the daemon's health
    assert answers[1]["ID"] == "curl-1" and answers[1]["Status"] == "queued"
