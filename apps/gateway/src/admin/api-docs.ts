import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { AdminModule } from './admin.module';

/**
 * The OpenAPI document (`/admin/api/openapi.json`) and Swagger UI
 * (`/admin/api/docs`), generated from the controllers and DTOs. Served
 * without a token: they describe the API and hold no data.
 */
export function setupApiDocs(app: INestApplication): void {
  const config = new DocumentBuilder()
    .setTitle('KeyPin admin API')
    .setDescription(
      'Bindings, intercept logs, alerts, settings, routes, users and audit. Errors: {"error": {message, type, code}}.',
    )
    .setVersion('1')
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
    .build();
  const document = SwaggerModule.createDocument(app, config, { include: [AdminModule] });
  SwaggerModule.setup('admin/api/docs', app, document, {
    jsonDocumentUrl: 'admin/api/openapi.json',
    yamlDocumentUrl: 'admin/api/openapi.yaml',
    customSiteTitle: 'KeyPin admin API',
  });
}
