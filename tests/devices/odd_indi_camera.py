"""An INDI driver of a camera whose temperature is not a number, for ``indiserver`` to run.

Some cameras' drivers report a temperature they cannot read as text (``n/a``) where INDI
wants a number; the CCD simulator cannot be made to. This driver speaks INDI's XML on its
standard input and output, as every driver does, and defines the least a CCD needs:
``CONNECTION``, ``CCD_INFO``, ``CCD_EXPOSURE``, ``CCD1`` (the image BLOB) and
``CCD_TEMPERATURE``, whose value is :data:`TEMPERATURE`. An exposure sends a FITS image of :data:`WIDTH` × :data:`HEIGHT`
pixels, each :data:`PIXEL`.

Run as ``python odd_indi_camera.py`` by ``indiserver`` (standard library only).
"""

import base64
import os
import struct
import sys
import threading
import xml.etree.ElementTree as ET

#: The INDI device name.
DEVICE = "Odd CCD"
#: What the driver says the temperature is.
TEMPERATURE = "n/a"
#: The sensor, pixels, and the value of every pixel of its images.
WIDTH = 8
HEIGHT = 6
PIXEL = 1234
#: Bytes read from indiserver at a time.
READ_SIZE = 65536
#: FITS: 80-character cards, 2,880-byte blocks.
CARD = 80
BLOCK = 2880

_output = threading.Lock()


def send(xml):
    with _output:
        sys.stdout.write(xml + "\n")
        sys.stdout.flush()


def define():
    send(f'<defSwitchVector device="{DEVICE}" name="CONNECTION" label="Connection" group="Main" '
         'state="Ok" perm="rw" rule="OneOfMany" timeout="60">'
         '<defSwitch name="CONNECT" label="Connect">On</defSwitch>'
         '<defSwitch name="DISCONNECT" label="Disconnect">Off</defSwitch></defSwitchVector>')
    send(f'<defNumberVector device="{DEVICE}" name="CCD_INFO" label="Info" group="Main" '
         'state="Ok" perm="ro" timeout="60">'
         f'<defNumber name="CCD_MAX_X" format="%4.0f" min="1" max="16000" step="1">{WIDTH}'
         '</defNumber>'
         f'<defNumber name="CCD_MAX_Y" format="%4.0f" min="1" max="16000" step="1">{HEIGHT}'
         '</defNumber>'
         '<defNumber name="CCD_PIXEL_SIZE" format="%5.2f" min="1" max="40" step="0">9'
         '</defNumber>'
         '<defNumber name="CCD_BITSPERPIXEL" format="%3.0f" min="8" max="64" step="0">16'
         '</defNumber></defNumberVector>')
    send(f'<defNumberVector device="{DEVICE}" name="CCD_EXPOSURE" label="Expose" group="Main" '
         'state="Idle" perm="rw" timeout="60">'
         '<defNumber name="CCD_EXPOSURE_VALUE" format="%5.2f" min="0" max="3600" step="1">0'
         '</defNumber></defNumberVector>')
    send(f'<defBLOBVector device="{DEVICE}" name="CCD1" label="Image" group="Main" '
         'state="Idle" perm="ro" timeout="60"><defBLOB name="CCD1" label="Image"/>'
         '</defBLOBVector>')
    send(f'<defNumberVector device="{DEVICE}" name="CCD_TEMPERATURE" label="Temperature" '
         'group="Main" state="Ok" perm="ro" timeout="60">'
         '<defNumber name="CCD_TEMPERATURE_VALUE" format="%5.2f" min="-50" max="50" step="0">'
         f'{TEMPERATURE}</defNumber></defNumberVector>')


def fits_image():
    """A FITS file of the image: big-endian 16-bit pixels, offset by BZERO as FITS wants."""
    cards = ["SIMPLE  =                    T", "BITPIX  =                   16",
             "NAXIS   =                    2", f"NAXIS1  = {WIDTH:20d}",
             f"NAXIS2  = {HEIGHT:20d}", "BZERO   =                32768",
             "BSCALE  =                    1", "END"]
    header = "".join(card.ljust(CARD) for card in cards).encode("ascii")
    header += b" " * (-len(header) % BLOCK)
    data = struct.pack(f">{WIDTH * HEIGHT}h", *[PIXEL - 32768] * (WIDTH * HEIGHT))
    data += b"\0" * (-len(data) % BLOCK)
    return header + data


def expose(seconds):
    send(f'<setNumberVector device="{DEVICE}" name="CCD_EXPOSURE" state="Busy">'
         f'<oneNumber name="CCD_EXPOSURE_VALUE">{seconds:g}</oneNumber></setNumberVector>')
    threading.Event().wait(seconds)
    image = fits_image()
    send(f'<setBLOBVector device="{DEVICE}" name="CCD1" state="Ok">'
         f'<oneBLOB name="CCD1" size="{len(image)}" format=".fits">'
         f'{base64.b64encode(image).decode("ascii")}</oneBLOB></setBLOBVector>')
    send(f'<setNumberVector device="{DEVICE}" name="CCD_EXPOSURE" state="Ok">'
         '<oneNumber name="CCD_EXPOSURE_VALUE">0</oneNumber></setNumberVector>')


def handle(element):
    if element.tag == "getProperties":
        define()
    elif element.tag == "newSwitchVector" and element.get("name") == "CONNECTION":
        send(f'<setSwitchVector device="{DEVICE}" name="CONNECTION" state="Ok">'
             '<oneSwitch name="CONNECT">On</oneSwitch>'
             '<oneSwitch name="DISCONNECT">Off</oneSwitch></setSwitchVector>')
    elif element.tag == "newNumberVector" and element.get("name") == "CCD_EXPOSURE":
        seconds = float(element.find("oneNumber").text)
        threading.Thread(target=expose, args=(seconds,), daemon=True).start()


def main():
    # INDI's stream has no root element: give it one, and handle each top-level element.
    parser = ET.XMLPullParser(events=("start", "end"))
    parser.feed("<stream>")
    depth = 0
    # Read what has come, whole lines or not: indiserver ends no message with a newline.
    while chunk := os.read(sys.stdin.fileno(), READ_SIZE):
        parser.feed(chunk)
        for event, element in parser.read_events():
            depth += 1 if event == "start" else -1
            if event == "end" and depth == 1:
                handle(element)


if __name__ == "__main__":
    main()
