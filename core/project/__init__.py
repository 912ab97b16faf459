"""The review project: corrected masks, case statuses and the audit log, safe against crashes."""
