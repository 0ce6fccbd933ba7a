"""Trial monitoring (`cds-service monitor`): the dexamethasone given, by arm and cycle, found in an export.

The same two passes as bulk screening (`screen.passes.per_patient_pass`: stream the input, keep what is
read in a temporary SQLite file by patient, then one patient at a time), with the monitor's own selection
(`selection`: enrolments, regimen CarePlans, the regimen drugs' requests, administrations, dispenses and
statements, with their dosages whole) and the monitoring rules (`rules.exposure.monitor`, on the hooks' own
enrolment, cycle clock and dexamethasone detection). Rows (`output`) name the study subject identifier,
never the patient's name or EHR id, nor any resource id; a summary per arm and site ends the output.
"""
