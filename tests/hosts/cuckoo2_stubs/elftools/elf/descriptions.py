# Inert stand-in for a third-party library that Cuckoo 2.0.7 imports at module level (tests/hosts/cuckoo2_run.py): never called on the path the host tests take.
describe_ei_class = None
describe_ei_data = None
describe_ei_version = None
describe_ei_osabi = None
describe_e_type = None
describe_e_machine = None
describe_e_version_numeric = None
describe_p_type = None
describe_p_flags = None
describe_sh_type = None
describe_dyn_tag = None
describe_symbol_type = None
describe_symbol_bind = None
describe_note = None
describe_reloc_type = None
