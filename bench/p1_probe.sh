#!/bin/bash
# P1 probe. First action: append "<job> <now> <scheduled or -> <run id or ->" to the file in $2.
printf '%s %s %s %s\n' "$1" "$EPOCHREALTIME" "${3:--}" "${JR_RUN_ID:--}" >>"$2"
