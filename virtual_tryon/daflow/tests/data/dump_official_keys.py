"""Dump the state_dict names/shapes of the official SDAFNet_Tryon (writes official_sdafnet_state_dict_keys.json).

Not a test. Needs the official OFA-Sys/DAFlow `models/sdafnet.py` (commit f463888) saved as `sdafnet_official.py`
in the folder given as SRC (pure PyTorch, nothing to stub). Usage: python dump_official_keys.py SRC OUT.json
"""
import importlib.util
import json
import sys
from pathlib import Path

spec = importlib.util.spec_from_file_location("sdafnet_official", Path(sys.argv[1]) / "sdafnet_official.py")
official = importlib.util.module_from_spec(spec)
spec.loader.exec_module(official)
SDAFNet_Tryon = official.SDAFNet_Tryon

model = SDAFNet_Tryon(ref_in_channel=6)  # as train_SDAFNet_viton.py builds it (head_nums default 6)
keys = [[k, list(v.shape)] for k, v in model.state_dict().items()]
head = {"source": "OFA-Sys/DAFlow models/sdafnet.py at commit f46388809dd4c1ada8a7202b1338a84f5147c9dc",
        "made_by": "SDAFNet_Tryon(ref_in_channel=6).state_dict() of the official class, instantiated on CPU "
                   "(torch only, nothing stubbed); names and shapes in state_dict order",
        "num_parameters": sum(p.numel() for p in model.parameters())}
with open(sys.argv[2], "w") as f:
    f.write(json.dumps(head, indent=1)[:-2] + ',\n "keys": [\n' + ",\n".join("  " + json.dumps(k) for k in keys)
            + "\n ]\n}\n")
