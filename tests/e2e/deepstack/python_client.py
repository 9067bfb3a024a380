"""Runs deepstack-python (the client Home Assistant's DeepStack integrations
pin, 0.8) against a yolod, the way Home Assistant calls it. Prints
{"IMAGE": [predictions]} as JSON; a refused request prints {"error": "..."}.

usage: python_client.py PORT API_KEY CUSTOM_MODEL MIN_CONFIDENCE IMAGE...
(an empty CUSTOM_MODEL means /v1/vision/detection)
"""
import json
import os
import sys

from deepstack.core import DeepstackException, DeepstackObject, get_objects_summary


def main():
    port, api_key, custom_model, min_confidence, *images = sys.argv[1:]
    client = DeepstackObject(
        ip="127.0.0.1",
        port=int(port),
        api_key=api_key,
        timeout=60,
        min_confidence=float(min_confidence),
        custom_model=custom_model,
    )
    out = {}
    for path in images:
        with open(path, "rb") as f:
            image_bytes = f.read()
        try:
            predictions = client.detect(image_bytes)
        except DeepstackException as e:
            print(json.dumps({"error": str(e)}))
            return
        # What the integration shows as the sensor's attributes.
        summary = get_objects_summary(predictions)
        assert sum(summary.values()) == len(predictions), summary
        out[os.path.basename(path)] = predictions
    print(json.dumps(out))


main()
