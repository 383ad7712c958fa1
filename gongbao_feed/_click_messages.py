"""click's own words an operator reads, marked so Babel puts them in our catalog.

click (8.1 and later) looks these up with `gettext.gettext` at run time;
`i18n.use_for_click()` makes our catalog the domain it reads. The msgids are
click's, word for word (tests/test_i18n.py checks each one is still in the
installed click). Nothing imports this module: it exists to be extracted.
"""

from .i18n import N_, N_plural

CLICK_MESSAGES = (
    N_('Aborted!'),
    N_('Options'),
    N_plural(
        'Got unexpected extra argument ({args})',
        'Got unexpected extra arguments ({args})',
    ),
    N_('Commands'),
    N_('Missing command.'),
    N_plural(
        'Takes {nargs} values but 1 was given.',
        'Takes {nargs} values but {len} were given.',
    ),
    N_('default: {default}'),
    N_('%(prog)s, version %(version)s'),
    N_('Show the version and exit.'),
    N_('Show this message and exit.'),
    N_plural(
        'Did you mean {possibility}?',
        '(Did you mean one of: {possibilities}?)',
    ),
    N_('Error: {message}'),
    N_("Try '{command} {option}' for help."),
    N_('Invalid value: {message}'),
    N_('Invalid value for {param_hint}: {message}'),
    N_('Missing argument'),
    N_('Missing option'),
    N_('Missing parameter'),
    N_('Missing {param_type}'),
    N_('Missing parameter: {param_name}'),
    N_('No such option {name!r}.'),
    N_('No such command {name!r}.'),
    N_('unknown error'),
    N_('Could not open file {filename!r}: {message}'),
    N_('Usage:'),
    N_('Argument {name!r} takes {nargs} values.'),
    N_('Option {name!r} does not take a value.'),
    N_plural(
        'Option {name!r} requires an argument.',
        'Option {name!r} requires {nargs} arguments.',
    ),
    N_('Choose from:\n\t{choices}'),
    N_plural(
        '{value!r} is not {choice}.',
        '{value!r} is not one of {choices}.',
    ),
    N_plural(
        '{value!r} does not match the format {format}.',
        '{value!r} does not match the formats {formats}.',
    ),
    N_('{value!r} is not a valid {number_type}.'),
    N_('{value} is not in the range {range}.'),
    N_('{value!r} is not a valid boolean. Recognized values: {states}'),
    N_('file'),
    N_('directory'),
    N_('path'),
    N_('{name} {filename!r} does not exist.'),
    N_('{name} {filename!r} is a file.'),
    N_('{name} {filename!r} is a directory.'),
    N_('{name} {filename!r} is not readable.'),
    N_('{name} {filename!r} is not writable.'),
    N_('{name} {filename!r} is not executable.'),
    N_plural(
        '{len_type} values are required, but {len_value} was given.',
        '{len_type} values are required, but {len_value} were given.',
    ),
)
