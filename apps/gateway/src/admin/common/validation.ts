import { ValidationPipe, type ValidationError } from '@nestjs/common';
import { KeypinError } from '../../infra/http/all-exceptions.filter';

function firstError(errors: ValidationError[], parent = ''): { field: string; message: string } {
  const e = errors[0]!;
  const field = parent ? `${parent}.${e.property}` : e.property;
  if (e.constraints) {
    const message = Object.values(e.constraints)[0] ?? 'is invalid';
    return { field, message };
  }
  if (e.children && e.children.length > 0) return firstError(e.children, field);
  return { field, message: 'is invalid' };
}

/**
 * DTO validation: unknown fields and wrong types are refused with 422
 * `validation_failed`, naming the field.
 */
export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: true,
    transform: true,
    transformOptions: { enableImplicitConversion: false },
    stopAtFirstError: true,
    exceptionFactory: (errors) => {
      const { field, message } = firstError(errors);
      const text = message.startsWith(field) ? message : `${field} ${message}`;
      return new KeypinError('validation_failed', `Invalid ${field}: ${text}`, { field });
    },
  });
}

/** A validation failure found by hand (after the DTO checks). */
export function invalid(field: string, message: string): KeypinError {
  return new KeypinError('validation_failed', `Invalid ${field}: ${message}`, { field });
}
