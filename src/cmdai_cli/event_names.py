"""Command AI's event names and their `properties.type` values, as a plain table.

The one list of them: the catalogue builds its models and samples on it, and Tab
completion reads it without loading the catalogue's models.
"""

# Segment's catalog page for the Command AI (CommandBar) source lists these.
IN_SEGMENT_CATALOG: tuple[tuple[str, str], ...] = (
    ("CommandBar booted", "booted"),
    ("Opened", "opened"),
    ("Closed", "closed"),
    ("Abandoned Search", "abandoned_search"),
    ("Command Suggestion", "command_suggestion"),
    ("Command Execution", "command_execution"),
    ("No Results For Query", "no_results_for_query"),
    ("Nudge Shown", "nudge_shown"),
    ("Nudge Clicked", "nudge_clicked"),
    ("User Changed Shortcut", "shortcut_edited"),
)

# Command AI's SDK documents these too; the catalog does not (yet).
SDK_ONLY: tuple[tuple[str, str], ...] = (
    ("Nudge Snoozed", "nudge_snoozed"),
    ("Nudge Completed", "nudge_completed"),
    ("Nudge Dismissed", "nudge_dismissed"),
    ("Survey Response", "survey_response"),
    ("Preview Shown", "preview_shown"),
    ("Questlist Shown", "questlist_shown"),
    ("Questlist Engagement", "questlist_engagement"),
    ("Questlist Item Engagement", "questlist_item_engagement"),
)

ALL = IN_SEGMENT_CATALOG + SDK_ONLY
