"""BPMN/DMN handling: safe XML parsing, validation of a deployment bundle, and parsed-spec caching."""
