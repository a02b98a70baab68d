"""Stage 3, district. In: the validated files and dm.AccountInfo. Out: the district crosswalk (crosswalk.py): for
every file, the district name it carries resolved (names.py) within the registry's state and compared with the
drop's registry entry (registry.py: one YAML file per district, the record of what a person verified). The
district checks of lib/checks.py decide on it; nothing after this stage runs unless they pass."""
