"""Double of lib.cuckoo.common.utils.add_family_detection (CAPEv2): appends to
results["detections"] a {"family", "details": [{detected_by: detected_on}]} block, merging
details when the family is already there."""


def add_family_detection(results, family, detected_by, detected_on):
    results.setdefault("detections", [])
    detection = {detected_by: detected_on}
    for block in results["detections"]:
        if block.get("family") == family:
            if detection not in block["details"]:
                block["details"].append(detection)
            break
    else:
        results["detections"].append({"family": family, "details": [detection]})
