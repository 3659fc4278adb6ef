"""Hypothesis strategies: what may arrive on a topic a bridge subscribes to, and Vigil JSON readings good and bad."""

from __future__ import annotations

import json

from hypothesis import strategies as st

TOPICS = [
    "vigil/readings/{a}/{b}", "vigil/readings/{a}", "shellies/{a}/ext_temperature/{b}", "shellies/{a}/sensor/{b}",
    "{a}/events/rpc", "{a}/status/{b}", "esphome/{a}/sensor/{b}/state", "w1/{a}/{b}", "tele/{a}/SENSOR",
    "berlin/tele/{a}/SENSOR", "zigbee2mqtt/{a}", "home/{a}/{b}", "hass/{a}/state", "telegraf/{a}", "lp_s/{a}",
    "{a}", "{a}/{b}",
]
SAMPLES = [
    b'{"value":-18.5,"ts":1699999999,"unit":"\xc2\xb0C","seq":1,"labels":{"site":"x"}}',
    b"47.69",
    b'{"Time":"2019-01-01T00:00:00","DS18B20":{"Temperature":49.7},"TempUnit":"C"}',
    b'{"temperature":27.34,"humidity":44.72,"battery":97,"linkquality":120,"last_seen":1699999990000}',
    b'{"src":"s","method":"NotifyStatus","params":{"ts":1699999996.16,"temperature:0":{"id":0,"tC":23.5}}}',
    b'{"temperature":"21.3","sensors":{"air":[{"t":20,"rh":30}]},"time":"2023-11-14T22:13:00Z","unit":"F"}',
    b"temperature,device=freezer,sensor=p\\ 1,room=lab value=-18.5,n=3i,s=\"x y\" 1699999990000000000",
]
levels = st.one_of(st.sampled_from(["d", "sensor", "temperature:0", "", " ", "$x", "a b", "é"]),
                   st.text(max_size=12), st.text(min_size=120, max_size=140))


@st.composite
def topics(draw: st.DrawFn) -> str:
    template = draw(st.sampled_from(TOPICS))
    return template.format(a=draw(levels), b=draw(levels))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.integers(0, 2))
        pos = draw(st.integers(0, len(data)))
        if op == 0 and data:
            del data[pos % len(data)]
        elif op == 1:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        else:
            data[pos:pos] = draw(st.sampled_from([b"NaN", b"1e999", b'"', b"\\", b"{", b"[", b"-", b",", b"\n",
                                                  b"null", b"true", b" ", b"=", b"\xff"]))
    return bytes(data)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.floats(), st.integers(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(
        st.sampled_from(["value", "ts", "unit", "Temperature", "temperature", "DS18B20", "params", "method",
                         "tC", "temperature:0", "last_seen", "Time", "TempUnit", "labels", "src", "x"]),
        inner, max_size=5)),
    max_leaves=12,
)
payloads = st.one_of(
    st.sampled_from(SAMPLES),
    mutated(),
    st.binary(max_size=300),
    st.text(max_size=100).map(str.encode),
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
)


names = st.one_of(st.sampled_from(["temperature", "humidity", "_x", "A1"]), st.text(max_size=70))
values = st.one_of(
    st.integers(min_value=-(2**60), max_value=2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
)
timestamps = st.one_of(
    st.floats(min_value=-10, max_value=2e9, allow_nan=False),
    st.integers(min_value=-10, max_value=2**40),
    st.sampled_from(["2023-11-14T22:13:00Z", "2023-11-14T22:13:00.123456789+01:00", "2023-11-14 22:13:00z",
                     "2023-11-14T22:13:00", "yesterday", ""]),
    st.booleans(),
)
label_maps = st.dictionaries(names, st.one_of(st.text(max_size=130), st.integers()), max_size=18)
units = st.one_of(st.sampled_from(["°C", "%", "K"]), st.text(max_size=18), st.integers())
optional = {
    "metric": names,
    "seq": st.one_of(st.integers(min_value=-2, max_value=2**54), st.floats(), st.booleans()),
    "labels": st.one_of(label_maps, st.lists(st.integers(), max_size=2)),
    "extra": st.integers(),
}
good_values = st.one_of(st.integers(min_value=-1000, max_value=1000), st.floats(-1e6, 1e6))
good = st.fixed_dictionaries(
    {"value": good_values, "ts": st.floats(0, 2e9), "unit": st.sampled_from(["°C", "%"])},
    optional={"metric": st.sampled_from(["temperature", "humidity"]), "seq": st.integers(0, 2**53 - 1),
              "labels": st.dictionaries(st.sampled_from(["site", "room"]), st.text(max_size=10), max_size=2)},
)
mixed = st.fixed_dictionaries({"value": values, "ts": timestamps, "unit": units}, optional=optional)
partial = st.fixed_dictionaries({}, optional={"value": values, "ts": timestamps, "unit": units, **optional})
readings = st.one_of(good, mixed, partial)
