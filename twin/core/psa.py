"""The ten PSA Certified security goals, which every attack scenario is scored against.

Numbering and names follow the PSA Certified Level 1 questionnaire and the seed article
(``shared/seeds``): goal 1 and goal 10 are the two the article calls fundamental.
"""

from __future__ import annotations

from collections.abc import Mapping

PSA_GOALS: Mapping[int, str] = {
    1: "Unique Identification",
    2: "Security Lifecycle",
    3: "Attestation",
    4: "Secure Boot",
    5: "Secure Update",
    6: "Anti-Rollback",
    7: "Isolation",
    8: "Interaction",
    9: "Secure Storage",
    10: "Cryptographic and Trusted Services",
}
