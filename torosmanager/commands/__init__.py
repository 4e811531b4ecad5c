"""The ``toros`` subcommands, a module each: ``add_arguments(parser)`` adds a command's
arguments, ``run(config, arguments)`` runs it and returns its exit status
(:mod:`torosmanager.console`). :mod:`torosmanager.cli` parses the command line and calls them.

Each module imports what is slow to load (astropy, the pipeline, the demo) only inside ``run``,
so that ``toros`` starts quickly whatever the command.
"""
