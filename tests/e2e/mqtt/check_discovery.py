"""Checks the retained Home Assistant discovery configs that yolod published,
as `mosquitto_sub -v -t 'homeassistant/#'` printed them (one "TOPIC JSON"
per line): every config parses, carries the keys MQTT discovery needs, has
a unique unique_id, belongs to one device, and points at topics that exist
(their retained messages are in the second file, "TOPIC PAYLOAD" lines).

usage: check_discovery.py CONFIGS STATES LABEL...
"""
import json
import sys

configs_file, states_file, *labels = sys.argv[1:]
states = {}
for line in open(states_file, encoding="utf-8", errors="replace"):
    topic, _, payload = line.rstrip("\n").partition(" ")
    states[topic] = payload

configs = {}
for line in open(configs_file, encoding="utf-8"):
    topic, _, payload = line.rstrip("\n").partition(" ")
    if topic.endswith("/config"):
        configs[topic] = json.loads(payload)
assert configs, "no discovery config was retained"

unique_ids = set()
devices = set()
by_label = {}
for topic, c in configs.items():
    prefix, component, node, object_id, _ = topic.split("/")
    assert prefix == "homeassistant" and component in ("binary_sensor", "sensor"), topic
    for key in ("name", "unique_id", "state_topic", "availability_topic", "device"):
        assert key in c, f"{topic}: no {key}"
    for key in ("identifiers", "name", "model", "sw_version"):
        assert key in c["device"], f"{topic}: device has no {key}"
    assert c["unique_id"] not in unique_ids, f"{topic}: unique_id {c['unique_id']} repeated"
    unique_ids.add(c["unique_id"])
    devices.add(tuple(c["device"]["identifiers"]))
    assert c["availability_topic"] in states, f"{topic}: availability topic {c['availability_topic']} not retained"
    assert c["state_topic"] in states, f"{topic}: state topic {c['state_topic']} not retained"
    assert states[c["state_topic"]].isdigit(), f"{c['state_topic']}: {states[c['state_topic']]!r} is not a count"
    if component == "binary_sensor":
        assert c.get("device_class") == "occupancy", f"{topic}: device_class {c.get('device_class')}"
        assert "payload_on" in c and "payload_off" in c and "value_template" in c, topic
    label = c["state_topic"].rsplit("/", 1)[1]
    by_label.setdefault(label, set()).add(component)

assert len(devices) == 1, f"expected one device, got {devices}"
for label in labels:
    assert by_label.get(label) == {"binary_sensor", "sensor"}, f"label {label}: {by_label.get(label)}"
print(f"discovery OK: {len(configs)} configs, {len(unique_ids)} unique ids, one device, every topic retained")
