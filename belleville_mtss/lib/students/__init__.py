"""Stage 4, students. In: the validated PowerSchool export, ClassLink users and Star files of a verified drop. Out:
the `IdentityMap` (identity.py: ClassLink email = PowerSchool email; the registry's Renaissance identifier = its
PowerSchool field), and from it the roster and results frames stamped with the district's AccountInfoId. The
gates of lib/checks.py decide on the map; gates.py keeps what they read from and write to the warehouse."""
